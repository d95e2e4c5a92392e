"""Queue functions: score the mini-batches of a message; record poison messages as failures."""

from __future__ import annotations

import logging

import azure.functions as func

from batchfx.api import context as app_context
from batchfx.services.poison import record_poison_message
from batchfx.services.scorer import score_message

bp = func.Blueprint()
logger = logging.getLogger(__name__)


@bp.queue_trigger(arg_name="msg", queue_name="%BATCHFX_QUEUE_NAME%",
                  connection="AzureWebJobsStorage")
def score_mini_batch_queue(msg: func.QueueMessage) -> None:
    """Score the mini-batches the message names (init() cached per script process)."""
    results = score_message(app_context.storage(), app_context.script_pool(),
                            msg.get_body().decode("utf-8"), message_id=msg.id or "",
                            dequeue_count=msg.dequeue_count or 1)
    logger.info("message %s: %s", msg.id, ", ".join(r.value for r in results))


@bp.queue_trigger(arg_name="msg", queue_name="%BATCHFX_QUEUE_NAME%-poison",
                  connection="AzureWebJobsStorage")
def record_poison_mini_batch(msg: func.QueueMessage) -> None:
    """A message the host gave up on becomes a failed mini-batch with the reason."""
    results = record_poison_message(app_context.storage(), msg.get_body().decode("utf-8"),
                                    dequeue_count=msg.dequeue_count or 0)
    logger.info("poison message %s: %s", msg.id, ", ".join(r.value for r in results))
