"""Versioned schema migrations, shipped as numbered SQL files (``NNNN_name.sql``).

The dialects differ (``AUTOINCREMENT`` vs identity columns, ``TEXT`` vs ``JSONB``), so each
backend has its own folder, ``migrations/<backend>/``; both hold the same version numbers and
file names, so a schema version means the same tables everywhere (a test checks it). Each
backend applies the files above its recorded version inside one transaction per file and
refuses a store whose version is newer than it knows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

Backend = Literal["sqlite", "postgres"]
BACKENDS: tuple[Backend, ...] = ("sqlite", "postgres")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """Split on ``;`` at line ends; our migrations contain no procedural bodies."""
        text = "\n".join(line.split("--", 1)[0] for line in self.sql.splitlines())
        return [s.strip() for s in text.split(";") if s.strip()]


def migrations(backend: Backend = "sqlite") -> list[Migration]:
    found = []
    folder = resources.files("gatewarden.store").joinpath("migrations").joinpath(backend)
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    return found


#: The newest schema version this gatewarden knows (the same for every backend).
LATEST = max(m.version for m in migrations("sqlite"))
