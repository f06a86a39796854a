"""``BRINK_AMQP_URL`` names every node of a cluster; each node gets the same credentials, virtual host and options."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.amqp_cluster import describe_broker, node_urls
from shared.settings import BrinkSettings, describe_error


def test_one_url_per_node_sharing_credentials_vhost_and_options() -> None:
    assert node_urls("amqp://brink:s3cr%40t@rabbit-0:5672,rabbit-1:5673, rabbit-2/brink?heartbeat=10") == [
        "amqp://brink:s3cr%40t@rabbit-0:5672/brink?heartbeat=10",
        "amqp://brink:s3cr%40t@rabbit-1:5673/brink?heartbeat=10",
        "amqp://brink:s3cr%40t@rabbit-2/brink?heartbeat=10",
    ]
    assert node_urls("amqp://localhost") == ["amqp://localhost"]
    assert node_urls("amqps://u:p@a,b?heartbeat=5") == ["amqps://u:p@a?heartbeat=5", "amqps://u:p@b?heartbeat=5"]


def test_the_description_names_every_node_and_never_the_credentials() -> None:
    described = describe_broker("amqp://brink:hunter2@rabbit-0:5672,rabbit-1,rabbit-2:5999/brink")
    assert described == "rabbit-0:5672, rabbit-1:5672, rabbit-2:5999/brink"
    assert "hunter2" not in described


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://rabbit:5672/", "must start with amqp:// or amqps://"),
        ("rabbit:5672", "must start with amqp:// or amqps://"),
        ("amqp://u:hunter2@a,,b/", "has an empty node address"),
        ("amqp://u:hunter2@a,/", "has an empty node address"),
    ],
)
def test_a_bad_node_list_is_one_line_naming_the_setting(url: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        BrinkSettings(_env_file=None, api_tokens=["a-real-token-value"], amqp_url=url)  # type: ignore[call-arg]
    line = describe_error(caught.value, BrinkSettings)
    assert line.startswith("setting BRINK_AMQP_URL is invalid: ")
    assert reason in line
    assert "hunter2" not in line


def test_the_failover_hooks_the_step_aio_pika_reconnects_through() -> None:
    """ClusterConnection chooses the next node in aio-pika's private reconnection step: an aio-pika that renames
    it would quietly reconnect to one node only, so this fails first."""
    from aio_pika import RobustConnection

    from shared.amqp_cluster import ClusterConnection

    step = "_RobustConnection__connect_transport"
    assert step in vars(RobustConnection)
    assert step in vars(ClusterConnection)
