"""init() writes a file next to itself (its working folder, the code folder, as in Azure
ML) after noting whether one was already there: a job must never find another job's."""

import os

state = {}


def init():
    state["seen"] = os.path.exists("left-behind.txt")
    with open("left-behind.txt", "w", encoding="utf-8") as f:
        f.write("from an earlier job\n")


def run(mini_batch):
    return [f"{os.path.basename(p)} seen={state['seen']}" for p in mini_batch]
