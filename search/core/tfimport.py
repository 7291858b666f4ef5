"""Import TensorFlow without its C++ start-up lines.

TensorFlow 2.21 prints absl's "All log messages before absl::InitializeLog() is called
are written to STDERR" and a oneDNN note at import, whatever TF_CPP_MIN_LOG_LEVEL says;
in a search they sit above the trial lines, once per worker process.  Set
TF_CPP_MIN_LOG_LEVEL to 0 or 1 to see them.
"""

from __future__ import annotations

import os
import sys
import tempfile

__all__ = ["import_tensorflow_quietly"]


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with stderr (file descriptor 2) sent aside while it loads; what it
    wrote there comes back if the import fails, so a broken install still says why."""
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2") in ("0", "1"):
        import tensorflow  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as aside:
        try:
            os.dup2(aside.fileno(), 2)
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            aside.seek(0)
            sys.stderr.write(aside.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
