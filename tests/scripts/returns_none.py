"""run() forgets to return: None, which the contract refuses."""


def run(mini_batch):
    for _path in mini_batch:
        pass
