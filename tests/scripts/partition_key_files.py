"""run(mini_batch, context) returns "<partition_key_value as JSON> <file name>" per file."""

import json
import os


def run(mini_batch, context):
    keys = json.dumps(context.partition_key_value, sort_keys=True)
    return [f"{keys} {os.path.basename(path)}" for path in mini_batch]
