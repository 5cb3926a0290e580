"""proit-notify: email and SMS notifications for the ProIT Handel ERP."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("proit-notify")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"
