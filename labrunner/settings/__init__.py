"""The settings layer: plugins, the config file, each lab's typed config and a run's resolved
settings. Imports only labrunner.authoring and below."""
