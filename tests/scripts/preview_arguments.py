"""The preview signature run(input_data, arguments): arguments are the job's arguments."""

import os


def run(input_data, arguments):
    return [f"{os.path.basename(p)} {' '.join(arguments)}" for p in input_data]
