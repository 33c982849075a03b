"""Suite-wide pytest configuration: the gcp tier's fixtures come from one plugin module.

`tests.gcp_double` (the Google contract double) is test code, not part of the funnelops wheel;
the repository root is on sys.path through `pythonpath = ["."]` in pyproject.toml.
"""

pytest_plugins = ["tests.gcp_double.plugin"]
