"""The ``geogan`` command line: click commands that parse, call one library function,
and turn :class:`geogan.errors.GeoganError` into one line on stderr and an exit code.

Installed as ``geogan.cli`` (see pyproject.toml); there is no top-level ``cli`` package.
"""
