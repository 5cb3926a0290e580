"""proit-notify: email and SMS notifications for the ProIT Handel ERP."""

#: the one place the version is written: pyproject.toml reads it at build time
#: ([tool.setuptools.dynamic]); importlib.metadata would cost 35 ms of every start
__version__ = "0.1.0"
