"""The course layer: student versions (assign), submissions (bundle), grading in a sandbox.
Imports only labrunner.report and below."""
