"""One data path for the seed tasks: local files when given, the HF hub otherwise.

Local layout (the one of ``../shared/data``)::

    <data_dir>/<dataset>/<split>.parquet      (or .json / .jsonl / .arrow)

``data_dir`` comes from the task's ``data_dir`` argument, else the environment
variable ``LR_GYM_DATA_DIR``. Without either, ``datasets.load_dataset(<hub name>)``
is used, which needs a network (or a warm HF cache).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DATA_DIR_ENV = "LR_GYM_DATA_DIR"
_EXTS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".arrow": "arrow"}


class DataNotFoundError(FileNotFoundError):
    """A dataset is neither in the local data directory nor reachable on the hub."""


class DataFormatError(ValueError):
    """A data file that cannot be read, or lacks a column its task reads."""


def _schema(columns: Mapping[str, str]) -> str:
    return ", ".join(f"{name.replace('|', ' or ')} ({kind})" for name, kind in columns.items())


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The local data directory: ``explicit``, else ``$LR_GYM_DATA_DIR``, else None."""
    value = explicit if explicit is not None else os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def local_split_file(dataset: str, split: str, root: Path) -> Path | None:
    """``root/<dataset>/<split>.<ext>`` if one exists."""
    for ext in _EXTS:
        path = root / dataset / f"{split}{ext}"
        if path.is_file():
            return path
    return None


def load_split(
    dataset: str,
    split: str,
    *,
    hub_name: str | None = None,
    data_dir_: str | os.PathLike | None = None,
    columns: Mapping[str, str] | None = None,
):  # noqa: ANN201 - datasets.Dataset, imported lazily
    """Loads one split as a ``datasets.Dataset``.

    Args:
        dataset: Local folder name, e.g. ``"cifar10"``.
        split: ``"train"``, ``"validation"`` or ``"test"``.
        hub_name: HF hub name when it differs from ``dataset``.
        data_dir_: Local data directory (overrides ``$LR_GYM_DATA_DIR``).
        columns: The HF schema the task reads, ``{column: what it holds}``; a key may
            name alternatives as ``"img|image"``. Checked here, so a wrong file fails
            with its name instead of a bare ``KeyError`` deep in the task.

    Raises:
        DataNotFoundError: Naming the variable, the argument and the expected files
            when no local file exists and the hub cannot be reached.
        DataFormatError: Naming the file, the dataset and the expected schema when a
            local file cannot be read (e.g. not parquet) or a column is missing.
    """
    import datasets

    hub = hub_name or dataset
    expected = f" Expected the HF {hub!r} schema: {_schema(columns)}." if columns else ""
    root = data_dir(data_dir_)
    if root is not None:
        path = local_split_file(dataset, split, root)
        if path is None:
            raise DataNotFoundError(
                f"No local file for {dataset!r} split {split!r} under {root}: expected "
                f"{root / dataset / (split + '.parquet')} (or .json/.jsonl/.arrow). "
                f"Point {DATA_DIR_ENV} or the data_dir argument at a folder with that layout."
            )
        try:
            ds = datasets.load_dataset(_EXTS[path.suffix], data_files=str(path), split="train")
        except Exception as err:  # ArrowInvalid, DatasetGenerationError, JSONDecodeError...
            raise DataFormatError(
                f"{path} (dataset {dataset!r}, split {split!r}) is not a readable "
                f"{_EXTS[path.suffix]} file ({type(err).__name__}: {err}).{expected}"
            ) from err
        where = str(path)
    else:
        try:
            ds = datasets.load_dataset(hub, split=split)
        except Exception as err:  # offline: ConnectionError, HfHubHTTPError, ValueError, ...
            raise DataNotFoundError(
                f"Could not load {hub!r} split {split!r} from the HF hub ({err}). "
                f"Offline, set {DATA_DIR_ENV}=/path/to/data or pass data_dir=... with files "
                f"laid out as <data_dir>/{dataset}/{split}.parquet."
            ) from err
        where = f"HF hub dataset {hub!r}"
    missing = [name for name in (columns or {})
               if not set(name.split("|")) & set(ds.column_names)]
    if missing:
        raise DataFormatError(
            f"{where} (dataset {dataset!r}, split {split!r}) lacks column(s) "
            f"{[m.replace('|', ' or ') for m in missing]}; it has {ds.column_names}.{expected}"
        )
    return ds
