"""The base layer: errors, progress, stopping, devices, the environment, names and hashes.
Imports nothing else of labrunner."""
