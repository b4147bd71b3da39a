"""Helpers shared by the SDK scenario scripts in this folder: configuration from the
environment, a client that never retries, and checks that print what passed."""

import os
import sys

import openai
from openai import OpenAI


def env(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"environment variable {name} is not set")
    return value


def client():
    return OpenAI(
        base_url=env("OPENAI_BASE_URL"),
        api_key=env("OPENAI_API_KEY"),
        max_retries=0,
        timeout=30.0,
    )


def check(condition, description, detail=""):
    # Not `assert`: `python3 -O` would turn every check into a pass.
    if not condition:
        raise AssertionError(f"{description}: {detail}" if detail else description)
    print(f"ok: {description}")

def run(scenarios):
    """Runs the scenario named on the command line."""
    if len(sys.argv) != 2 or sys.argv[1] not in scenarios:
        sys.exit(f"usage: {sys.argv[0]} <{'|'.join(scenarios)}>")
    print(f"openai {openai.__version__}, scenario {sys.argv[1]}")
    scenarios[sys.argv[1]]()
    print(f"passed: {sys.argv[1]}")
