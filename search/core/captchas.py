"""Generated captchas: a text dataset for demos and tests, written as a text folder.

``--dataset captcha`` (10,000 images) or ``captcha:N`` (N images) draws N captchas of 4
digits with the ``captcha`` package's ``ImageCaptcha``, 100x40 pixels, grey, and writes
them as ``TEXT_NNNNN.png`` into ``<data dir>/captcha-N-4x10-100x40-seed0/`` (data dir:
``--data-dir``, default ``studies/.data``), where the ``textfolder:`` loader reads them
back.  A folder that exists is reused, not regenerated.

Deterministic: image ``i`` is drawn from its own ``random.Random`` seeded with
(seed, i), so the same N gives the same images on every machine with the same Pillow.
The seed is fixed (0), not the study's ``--seed``: like every other dataset, the images
stay the same across studies, so studies with different seeds stay comparable.
``captcha`` 0.7 draws from the ``secrets`` module (0.5 from ``random``), which cannot be
seeded; while generating, that module-level name is replaced by a seeded stand-in.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.errors import DataError

__all__ = ["CaptchaSpec", "DEFAULT_COUNT", "DEFAULT_DATA_DIR", "captcha_folder", "generate"]

DEFAULT_COUNT = 10_000
DEFAULT_DATA_DIR = "studies/.data"
MIN_COUNT = 100
DIGITS = "0123456789"


@dataclass(frozen=True)
class CaptchaSpec:
    """What to generate; the folder name records all of it."""

    count: int = DEFAULT_COUNT
    length: int = 4
    alphabet: str = DIGITS
    height: int = 40
    width: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.count < MIN_COUNT:
            raise DataError(
                f"captcha:{self.count}: expected at least {MIN_COUNT} images "
                f"(test and validation splits need some), received {self.count}"
            )
        if self.length < 1 or len(set(self.alphabet)) < 2 or len(set(self.alphabet)) != len(self.alphabet):
            raise DataError(
                "captcha: expected length >= 1 and an alphabet of 2+ distinct "
                f"characters, received {self.length}, {self.alphabet!r}"
            )
        if any(not c.isalnum() for c in self.alphabet):  # the text goes into the file name
            raise DataError(f"captcha: expected an alphabet of letters and digits, received {self.alphabet!r}")

    @property
    def folder_name(self) -> str:
        chars = "digits" if self.alphabet == DIGITS else f"{len(self.alphabet)}chars"
        return f"captcha-{self.count}-{self.length}x{chars}-{self.width}x{self.height}-seed{self.seed}"


def captcha_folder(count: int = DEFAULT_COUNT, data_dir: str | None = None) -> Path:
    """The folder of ``captcha:count`` under ``data_dir``, generated first if it is missing."""
    spec = CaptchaSpec(count)
    folder = Path(data_dir or DEFAULT_DATA_DIR).expanduser() / spec.folder_name
    return folder if folder.is_dir() else generate(folder, spec)


class _SeededRandom:
    """Stands in for the ``secrets`` (captcha 0.7) or ``random`` (0.5) module captcha draws from."""

    def __init__(self) -> None:
        self.rng = random.Random(0)

    def randbelow(self, n: int) -> int:
        return self.rng.randrange(n)

    def randbits(self, k: int) -> int:
        return self.rng.getrandbits(k)

    def __getattr__(self, name: str) -> Any:  # choice, randint, uniform, random, ...
        return getattr(self.rng, name)


@contextmanager
def _seeded_captcha() -> Iterator[_SeededRandom]:
    try:
        import captcha.image as module
    except ImportError as e:
        raise DataError(
            "the captcha dataset needs the captcha package: pip install captcha (or pip install -e '.[text]')"
        ) from e
    names = [n for n in ("secrets", "random") if hasattr(module, n)]
    if not names:
        raise DataError("this version of the captcha package cannot be seeded; pip install 'captcha>=0.5,<=0.7.1'")
    stand_in, saved = _SeededRandom(), {n: getattr(module, n) for n in names}
    for n in names:
        setattr(module, n, stand_in)
    try:
        yield stand_in
    finally:
        for n, original in saved.items():
            setattr(module, n, original)


def generate(folder: Path, spec: CaptchaSpec = CaptchaSpec()) -> Path:
    """Write ``spec.count`` captchas into ``folder`` (via a temporary folder, renamed when complete)."""
    with _seeded_captcha() as stand_in:
        from captcha.image import ImageCaptcha

        sizes = tuple(round(s * spec.height / 60) for s in (42, 50, 56))  # the package's sizes are for 60 px
        drawer = ImageCaptcha(width=spec.width, height=spec.height, font_sizes=sizes)
        tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
        try:
            tmp.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataError(f"cannot create {tmp} ({e.strerror}); pass a writable --data-dir") from e
        digits = len(str(spec.count - 1))
        for i in range(spec.count):
            stand_in.rng = random.Random(f"{spec.seed}:{i}")
            text = "".join(stand_in.rng.choice(spec.alphabet) for _ in range(spec.length))
            drawer.generate_image(text).convert("L").save(tmp / f"{text}_{i:0{digits}d}.png")
    try:
        tmp.rename(folder)
    except OSError:
        if not folder.is_dir():
            raise DataError(f"cannot move {tmp} to {folder}; pass a writable --data-dir") from None
        shutil.rmtree(tmp, ignore_errors=True)  # another process finished the same folder first
    return folder
