"""Start-up clears an operator's PROMETHEUS_MULTIPROC_DIR of old metrics files, and of nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared import metrics


def test_only_prometheus_files_are_removed_from_the_named_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = ["counter_123.db", "histogram_123.db", "gauge_mostrecent_123.db", "gauge_livesum_9.db", "summary_7.db"]
    kept = ["brink.db", "brink.db-wal", "notes.db", "counter.db", "app.sqlite"]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.setenv(metrics.MULTIPROCESS_DIRECTORY, str(tmp_path))  # pointed at the working directory
    assert metrics.prepare_multiprocess_directory() == tmp_path
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(kept)
