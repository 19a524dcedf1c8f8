import json

import pytest

from dcbench.config import resolve, result_identity
from dcbench.writers import RunDirectory, RunDirectoryError


def test_records_skip_a_torn_last_line_and_merge_ranks(tmp_path):
    run = RunDirectory(tmp_path)
    (tmp_path / "records.jsonl").write_text(json.dumps({"id": "a", "x": 1}) + "\n" + '{"id": "b", "x"')
    (tmp_path / "records.rank1.jsonl").write_text(json.dumps({"id": "c"}) + "\n" + json.dumps({"id": "a", "x": 2}))
    records = run.records()
    assert sorted(records) == ["a", "c"] and records["a"]["x"] == 1


def test_prepare_refuses_to_mix_results(tmp_path):
    run = RunDirectory(tmp_path / "run")
    config = resolve(None)
    run.prepare(config, result_identity)
    run.records_file(0).write_text(json.dumps({"id": "a"}) + "\n")
    run.prepare(resolve(None, ["--scorer.batch_size", "3"]), result_identity)  # same results: fine
    with pytest.raises(RunDirectoryError, match=r"different scorer.*--overwrite"):
        run.prepare(resolve(None, ["--scorer.loss", "l1"]), result_identity)
    assert run.records()  # nothing lost
    run.prepare(resolve(None, ["--scorer.loss", "l1"]), result_identity, overwrite=True)
    assert not run.records()
