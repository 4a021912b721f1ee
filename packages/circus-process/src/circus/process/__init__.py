"""circus.process: see the package README."""

__all__: list[str] = []
