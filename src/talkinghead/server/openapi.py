"""Print the server's OpenAPI schema: ``python -m talkinghead.server.openapi > docs/openapi.json``."""

from __future__ import annotations

import json
import sys
import tempfile


def schema() -> dict:
    """The OpenAPI schema of an app with the default settings."""
    from . import ServerSettings, create_app

    with tempfile.TemporaryDirectory() as folder:
        app = create_app(ServerSettings(data_dir=folder))
        try:
            return app.openapi()
        finally:
            app.state.talkinghead.close()


if __name__ == "__main__":
    json.dump(schema(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
