"""A plugin whose import raises KeyboardInterrupt: skipped and named like any broken plugin."""

raise KeyboardInterrupt
