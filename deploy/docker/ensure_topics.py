"""One-shot topic initializer: create every riskrelay topic (and its .dlq twin) that is missing.

Runs in any riskrelay image (``python /opt/riskrelay/ensure_topics.py``): the compose stack's
``topics`` service and the Kubernetes ``riskrelay-topics`` Job. Partition counts, cleanup policies
and retention come from ``riskrelay.shared.topics`` (the one registry the services use), so there is
nothing to keep in step here. Existing topics are left alone; a topic with fewer partitions than
the registry asks for is reported (adding partitions moves keys, so that stays an operator's call).

Settings: ``RISKRELAY_TOPICS_KAFKA__*``, the same ``KafkaSettings`` group every service has
(bootstrap, TLS, SASL, topic prefix, replication factor).
"""

from __future__ import annotations

import asyncio
import sys

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic_settings import BaseSettings

from riskrelay.shared.kafka import aiokafka_client_options
from riskrelay.shared.settings import KafkaSettings, load_settings, service_settings_config
from riskrelay.shared.topics import ALL_TOPICS, ensure_topics, topic_name

ATTEMPTS = 30
RETRY_DELAY_SECONDS = 2.0


class TopicInitSettings(BaseSettings):
    model_config = service_settings_config("RISKRELAY_TOPICS_")

    kafka: KafkaSettings = KafkaSettings()


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    described = await admin.describe_topics(names)
    return {item["topic"]: len(item["partitions"]) for item in described}


async def initialize(settings: KafkaSettings) -> list[str]:
    """Ensure the topics exist; return the names created. Retries while the broker comes up."""
    for attempt in range(1, ATTEMPTS + 1):
        admin = AIOKafkaAdminClient(**aiokafka_client_options(settings))
        try:
            await admin.start()
            created = await ensure_topics(
                admin, ALL_TOPICS, settings.topic_prefix, settings.replication_factor
            )
            expected = {topic_name(spec, settings.topic_prefix): spec for spec in ALL_TOPICS}
            for name, count in sorted((await _partition_counts(admin, list(expected))).items()):
                if count < expected[name].partitions:
                    print(
                        f"warning: {name} has {count} partitions, the registry asks for "
                        f"{expected[name].partitions}; consumers scale only up to {count}"
                    )
            return created
        except (KafkaError, OSError) as error:
            if attempt == ATTEMPTS:
                raise
            print(f"broker not ready ({type(error).__name__}); retry {attempt}/{ATTEMPTS}")
            await asyncio.sleep(RETRY_DELAY_SECONDS)
        finally:
            await admin.close()
    raise AssertionError("unreachable")


def main() -> int:
    settings = load_settings(TopicInitSettings).kafka
    created = asyncio.run(initialize(settings))
    print(f"created {len(created)} topic(s): {', '.join(created) or 'none (all existed)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
