"""run(mini_batch, context) returns "<context.minibatch_index> <path>" for each file."""


def run(mini_batch, context):
    return [f"{context.minibatch_index} {path}" for path in mini_batch]
