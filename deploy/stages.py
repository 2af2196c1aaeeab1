"""A stage of .chalice/config.json, as chalice itself resolves it.

Per-function values (``lambda_functions``) override the stage's, which
override the file's top level; reading them through chalice's own Config
keeps the template's additions in step with what `chalice package` wrote.
"""
import json
import os

from chalice.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The chalice function names (app.py) and their template resources.
FUNCTIONS = {"api_handler": "APIHandler", "token_authorizer": "TokenAuthorizer",
             "mailer": "Mailer"}


def config(project_dir, stage, function_name="api_handler"):
    with open(os.path.join(project_dir, ".chalice", "config.json"), encoding="utf-8") as f:
        from_disk = json.load(f)
    if stage not in from_disk.get("stages", {}):
        raise SystemExit(f"no stage {stage!r} in .chalice/config.json")
    return Config(chalice_stage=stage, function_name=function_name,
                  user_provided_params={"project_dir": project_dir}, config_from_disk=from_disk)


def build_dir(stage, project_dir=ROOT):
    """Where `make package STAGE=stage` writes sam.json and deployment.zip:
    a folder per stage, so that building one never overwrites another."""
    return os.path.join(project_dir, "build", stage)
