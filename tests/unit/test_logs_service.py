"""The logs service's contract with other features: `put_events(region, group, stream,
events)` creates the group and stream when missing, per region, and what it writes is read
back by GetLogEvents and FilterLogEvents (the service, on a real database)."""

from __future__ import annotations

from pathlib import Path

from fleetsim.localcore.db import Database
from fleetsim.localcore.features.logs.service import LogsService

NOW = 1_700_000_000_000


def test_put_events_creates_group_and_stream_per_region(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db", "us-east-1")
    logs = LogsService(db, lambda: NOW)
    logs.put_events("us-east-1", "/aws/lambda/jitr", "2024/01/01/[$LATEST]abc",
                    [(NOW, "START RequestId: 1"), (NOW + 1, "END RequestId: 1")])
    logs.put_events("us-east-1", "/aws/lambda/jitr", "2024/01/01/[$LATEST]abc",
                    [(NOW + 2, "REPORT RequestId: 1")])
    logs.put_events("eu-west-1", "AWSIotLogsV2", "s", [(NOW, '{"logLevel": "INFO"}')])
    page = logs.get_log_events("us-east-1", "/aws/lambda/jitr", "2024/01/01/[$LATEST]abc",
                               None, None, None, None, True)
    assert [e.message for e in page.events] == ["START RequestId: 1", "END RequestId: 1",
                                                "REPORT RequestId: 1"]
    assert [g.name for g in logs.describe_groups("us-east-1", "", "", "", 50)[0]] == \
        ["/aws/lambda/jitr"]
    found = logs.filter_log_events("eu-west-1", "AWSIotLogsV2", None, None, None, None,
                                   "{$.logLevel = INFO}", None, None)
    assert [(e.stream_name, e.message) for e in found.events] == [("s", '{"logLevel": "INFO"}')]
    logs.delete_group("us-east-1", "/aws/lambda/jitr")
    logs.put_events("us-east-1", "/aws/lambda/jitr", "again", [(NOW, "back")])
    streams, _ = logs.describe_streams("us-east-1", "/aws/lambda/jitr", "", "LogStreamName",
                                       False, 0, 50)
    assert [s.name for s in streams] == ["again"]
    db.close()
