"""The installed version of lifecircle, from the package metadata (one place)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lifecircle")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
