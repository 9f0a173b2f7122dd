"""Versioned schema migrations, shipped as numbered SQL files (``NNNN_name.sql``).

Each backend applies the files above its recorded version inside one transaction per file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """Split on ``;`` at line ends; our migrations contain no procedural bodies."""
        text = "\n".join(line.split("--", 1)[0] for line in self.sql.splitlines())
        return [s.strip() for s in text.split(";") if s.strip()]


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files("gatewarden.store").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    return found


LATEST = max(m.version for m in migrations())
