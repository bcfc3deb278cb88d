"""Damaged or mis-shaped local data files name the file, the dataset and the HF schema."""

from __future__ import annotations

import datasets
import pytest

from lr_gym.tasks.seed.cifar10 import load_cifar10
from lr_gym.tasks.seed.conll import load_conll
from lr_gym.tasks.seed.data import DataFormatError, load_split
from lr_gym.tasks.seed.imdb import load_imdb


def _parquet(path, columns):
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(columns).to_parquet(str(path))
    return path


def test_corrupt_parquet_names_the_file_dataset_and_schema(tmp_path):
    bad = tmp_path / "conll2003" / "train.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a parquet file at all")
    with pytest.raises(DataFormatError) as err:
        load_conll(str(tmp_path))
    text = str(err.value)
    assert f"{bad} (dataset 'conll2003', split 'train') is not a readable parquet file" in text
    assert "tokens (list[str]), ner_tags (list[int]" in text  # the expected HF schema


def test_wrong_columns_name_the_file_dataset_and_schema(tmp_path):
    path = _parquet(tmp_path / "conll2003" / "train.parquet",
                    {"words": [["EU", "rejects"]], "tags": [[3, 0]]})
    with pytest.raises(DataFormatError) as err:
        load_conll(str(tmp_path))
    text = str(err.value)
    assert f"{path} (dataset 'conll2003', split 'train') lacks column(s) ['tokens', " in text
    assert "it has ['words', 'tags']" in text and "Expected the HF 'conll2003' schema" in text


def test_other_seed_tasks_check_their_columns(tmp_path):
    _parquet(tmp_path / "cifar10" / "train.parquet", {"picture": [b"x"], "label": [1]})
    with pytest.raises(DataFormatError, match=r"lacks column\(s\) \['img or image'\]"):
        load_cifar10(str(tmp_path))
    _parquet(tmp_path / "imdb" / "train.parquet", {"review": ["great"], "label": [1]})
    with pytest.raises(DataFormatError, match=r"imdb/train.parquet .*lacks column\(s\) \['text'\]"):
        load_imdb(str(tmp_path))


def test_corrupt_json_and_a_good_file(tmp_path):
    bad = tmp_path / "toy" / "test.jsonl"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"text": "ok", "label": 1}\n{"text": broken\n')
    with pytest.raises(DataFormatError, match=f"{bad} .* is not a readable json file"):
        load_split("toy", "test", data_dir_=tmp_path, columns={"text": "string"})
    _parquet(tmp_path / "toy" / "train.parquet", {"text": ["a", "b"], "label": [0, 1]})
    ds = load_split("toy", "train", data_dir_=tmp_path, columns={"text": "string"})
    assert ds.column_names == ["text", "label"] and len(ds) == 2
