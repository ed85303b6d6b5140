"""A consumer that stops consuming while records wait is detected: /healthz fails and the
process is told to stop (so its supervisor starts a fresh one). Found by fault injection: a
classifier stopped consuming after a rebalance and a database restart, yet stayed healthy.

A process that cannot finish starting fails its start-up instead of hanging: found by fault
injection too, a register replacement waited in its start-up for minutes and logged nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from riskrelay.shared.app import ServiceContext, StartupTimeout, create_service_app
from riskrelay.shared.kafka import OutgoingEvent, Received
from riskrelay.shared.settings import KafkaSettings, ServiceSettings
from riskrelay.shared.topics import TICKET_EVENTS
from riskrelay.testing import produce, running

pytestmark = pytest.mark.integration


async def test_a_stuck_consumer_fails_liveness_and_asks_to_stop(
    kafka_settings: KafkaSettings,
) -> None:
    stopped = asyncio.Event()
    release = asyncio.Event()

    def configure(context: ServiceContext) -> None:
        async def hang(batch: list[Received[Any]]) -> list[OutgoingEvent]:
            await release.wait()  # a consumer that never finishes its batch
            return []

        context.consume(TICKET_EVENTS, lambda raw: raw, hang)
        context.state["on_stall"] = stopped.set

    settings = ServiceSettings(
        service_name="stuck",
        kafka=kafka_settings.model_copy(update={"stall_timeout_s": 3.0}),
    )
    app = create_service_app(settings, title="stuck", description="stuck", configure=configure)
    async with (
        running(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://stuck"
        ) as client,
    ):
        assert (await client.get("/healthz")).status_code == 200
        await produce(
            kafka_settings.bootstrap, f"{kafka_settings.topic_prefix}ticket-events", [(b"k", b"{}")]
        )
        await asyncio.wait_for(stopped.wait(), timeout=60)
        health = await client.get("/healthz")
        release.set()
    assert health.status_code == 503
    assert "committed nothing" in health.json()["consumer"]
    # stuck in its batch, not in a rebalance: it still holds the partitions
    assert "this member holds" in health.json()["consumer"]
    assert "holds 0 partitions" not in health.json()["consumer"]


async def test_a_start_up_step_that_never_finishes_fails_start_up_and_names_the_step(
    kafka_settings: KafkaSettings,
) -> None:
    never = asyncio.Event()
    seen: list[ServiceContext] = []

    async def wait_for_nothing(context: ServiceContext) -> None:
        await never.wait()

    def configure(context: ServiceContext) -> None:
        context.on_startup.append(wait_for_nothing)
        seen.append(context)

    settings = ServiceSettings(
        service_name="hanging",
        kafka=kafka_settings,
        startup_step_timeout_s=2.0,
    )
    app = create_service_app(settings, title="hanging", description="hanging", configure=configure)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(StartupTimeout, match="start-up hook wait_for_nothing"):
        async with running(app):
            pytest.fail("the service started although its start-up hook never finished")
    assert loop.time() - began < 30
    assert not seen[0].producer.started, "a failed start-up leaves its producer open"
