"""Helpers shared by the SDK scenario scripts in this folder: configuration from the
environment, a client that never retries, and checks that print what passed."""

import os
import sys

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
