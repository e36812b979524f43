#!/usr/bin/env python3
# tests/testbed/test_deploy.py -- keeps the recipes under deploy/ valid: every YAML and JSON
# file parses, and each recipe holds what docs/deploy.md promises of it (one run at a time,
# a non-root user that is the image's, a read-only root, the sync command, the config where
# ecrcp sync looks for it). Run by .ci/run with the bed's venv (PyYAML); no root, no network.
# tests/e2e/image.rs runs the image as cronjob.yaml says; this file checks the rest.

import json
import pathlib
import re
import tomllib
import unittest

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"


def image_user() -> str:
    """The uid the image runs as: packaging/container's USER line."""
    found = re.search(r"^USER (\d+):(\d+)$", (ROOT / "packaging/container").read_text(), re.M)
    assert found, "packaging/container has no USER uid:gid line"
    return found.group(1)


def default_config() -> pathlib.PurePosixPath:
    """Where `ecrcp sync` reads its config by default: src/config.rs's DEFAULT_PATH."""
    found = re.search(r'DEFAULT_PATH: &str = "([^"]+)"', (ROOT / "src/config.rs").read_text())
    assert found, "src/config.rs has no DEFAULT_PATH"
    return pathlib.PurePosixPath(found.group(1))


def load_yaml(path: pathlib.Path) -> list:
    # BaseLoader: GitHub's `on:` stays the string "on" (YAML 1.1 reads it as true)
    return [doc for doc in yaml.load_all(path.read_text(), Loader=yaml.BaseLoader) if doc is not None]


def one(path: pathlib.Path) -> dict:
    docs = load_yaml(path)
    assert len(docs) == 1, f"{path}: {len(docs)} documents, expected 1"
    return docs[0]


def flag(args: list, name: str):
    """The value after `name` in an argv, or None."""
    return args[args.index(name) + 1] if name in args else None


class Files(unittest.TestCase):
    def test_every_yaml_and_json_file_parses(self):
        files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
        self.assertGreaterEqual(len(files), 8, files)
        for path in files:
            with self.subTest(path=str(path.relative_to(ROOT))):
                if path.suffix == ".json":
                    self.assertIsInstance(json.loads(path.read_text()), dict)
                else:
                    self.assertTrue(load_yaml(path))


class Kubernetes(unittest.TestCase):
    def job_specs(self):
        for name in ("cronjob.yaml", "sharded-cronjob.yaml"):
            cron = one(KUBERNETES / name)
            yield name, cron, cron["spec"]["jobTemplate"]["spec"]

    def test_cronjobs_run_one_at_a_time_as_the_images_user_on_a_read_only_root(self):
        config = default_config()
        configmap = one(KUBERNETES / "configmap.yaml")
        account = one(KUBERNETES / "serviceaccount.yaml")
        for name, cron, job in self.job_specs():
            with self.subTest(manifest=name):
                self.assertEqual(cron["kind"], "CronJob")
                self.assertEqual(cron["spec"]["concurrencyPolicy"], "Forbid")
                pod = job["template"]["spec"]
                self.assertEqual(pod["restartPolicy"], "Never")  # podFailurePolicy needs it
                self.assertEqual(pod["serviceAccountName"], account["metadata"]["name"])
                self.assertEqual(pod["securityContext"]["runAsNonRoot"], "true")
                self.assertEqual(pod["securityContext"]["runAsUser"], image_user())
                (container,) = pod["containers"]
                security = container["securityContext"]
                self.assertEqual(security["readOnlyRootFilesystem"], "true")
                self.assertEqual(security["allowPrivilegeEscalation"], "false")
                self.assertEqual(security["capabilities"]["drop"], ["ALL"])
                self.assertNotIn("command", container)  # the image's ENTRYPOINT
                args = container["args"]
                self.assertEqual(args[:1], ["sync"])
                self.assertEqual(flag(args, "--engine"), "registry")
                self.assertEqual(flag(args, "--log-format"), "json")
                self.assertIn("memory", container["resources"]["requests"])
                # 75 ends the Job (or the shard) rather than retrying at once
                codes = [rule["onExitCodes"]["values"] for rule in job["podFailurePolicy"]["rules"]
                         if "onExitCodes" in rule]
                self.assertIn("75", sum(codes, []))
                volumes = {v["name"]: v for v in pod["volumes"]}
                mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
                # the ConfigMap where ecrcp sync looks by default, with images.toml in it
                config_volume = volumes[mounts[str(config.parent)]]
                self.assertEqual(config_volume["configMap"]["name"], configmap["metadata"]["name"])
                # the state directory inside an emptyDir, named by ECRCP_STATE_DIR
                env = {e["name"]: e["value"] for e in container["env"]}
                state = pathlib.PurePosixPath(env["ECRCP_STATE_DIR"])
                holder = next(path for path in mounts if state.is_relative_to(path))
                self.assertIn("emptyDir", volumes[mounts[holder]])

    def test_the_configmap_holds_a_loadable_images_toml(self):
        configmap = one(KUBERNETES / "configmap.yaml")
        config = tomllib.loads(configmap["data"][default_config().name])
        self.assertEqual(config["version"], 1)
        self.assertTrue(config["image"])

    def test_the_service_account_names_an_irsa_role(self):
        account = one(KUBERNETES / "serviceaccount.yaml")
        self.assertRegex(account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
                         r"^arn:aws:iam::\d{12}:role/")

    def test_the_sharded_job_is_indexed_and_its_shard_count_agrees(self):
        job = one(KUBERNETES / "sharded-cronjob.yaml")["spec"]["jobTemplate"]["spec"]
        self.assertEqual(job["completionMode"], "Indexed")
        (container,) = job["template"]["spec"]["containers"]
        shards = flag(container["args"], "--shards")
        self.assertEqual(job["completions"], shards)
        self.assertEqual(job["parallelism"], shards)
        self.assertIn("backoffLimitPerIndex", job)  # FailIndex needs it


class Ecs(unittest.TestCase):
    def test_the_task_runs_sync_as_the_images_user_on_a_read_only_root(self):
        task = json.loads((DEPLOY / "ecs/task-definition.json").read_text())
        self.assertRegex(task["taskRoleArn"], r"^arn:aws:iam::\d{12}:role/")
        (container,) = task["containerDefinitions"]
        self.assertEqual(container["user"].split(":")[0], image_user())
        self.assertIs(container["readonlyRootFilesystem"], True)
        self.assertEqual(container["command"][:1], ["sync"])
        self.assertEqual(flag(container["command"], "--log-format"), "json")
        self.assertEqual(container["linuxParameters"]["capabilities"]["drop"], ["ALL"])
        env = {e["name"]: e["value"] for e in container["environment"]}
        mounts = {m["containerPath"]: m["sourceVolume"] for m in container["mountPoints"]}
        self.assertIn(env["ECRCP_STATE_DIR"], mounts)
        self.assertEqual({v["name"] for v in task["volumes"]}, set(mounts.values()))

    def test_the_schedule_starts_that_task(self):
        task = json.loads((DEPLOY / "ecs/task-definition.json").read_text())
        schedule = json.loads((DEPLOY / "ecs/schedule.json").read_text())
        target = schedule["Target"]
        self.assertTrue(target["EcsParameters"]["TaskDefinitionArn"].endswith(f":task-definition/{task['family']}"))
        self.assertEqual(target["EcsParameters"]["TaskCount"], 1)
        self.assertRegex(schedule["ScheduleExpression"], r"^(cron|rate)\(")


class Ci(unittest.TestCase):
    def test_github_actions_job_runs_on_a_schedule_with_oidc(self):
        workflow = one(DEPLOY / "github-actions.yml")
        self.assertTrue(workflow["on"]["schedule"][0]["cron"])
        self.assertEqual(workflow["permissions"]["id-token"], "write")
        self.assertEqual(workflow["concurrency"]["cancel-in-progress"], "false")
        (job,) = workflow["jobs"].values()
        steps = {step.get("uses", "").split("@")[0]: step for step in job["steps"]}
        self.assertIn("role-to-assume", steps["aws-actions/configure-aws-credentials"]["with"])
        run = "\n".join(step.get("run", "") for step in job["steps"])
        self.assertIn("sync --engine registry --log-format json", run)
        self.assertIn('"$status" -eq 75', run)

    def test_gitlab_job_runs_on_a_schedule_with_an_id_token(self):
        (job,) = one(DEPLOY / "gitlab-ci.yml").values()
        self.assertIn('"schedule"', job["rules"][0]["if"])
        self.assertEqual(job["id_tokens"]["AWS_ID_TOKEN"]["aud"], "sts.amazonaws.com")
        script = "\n".join(job["script"])
        self.assertIn("AWS_WEB_IDENTITY_TOKEN_FILE=", script)
        self.assertIn("sync --engine registry --log-format json", script)
        self.assertIn('"$status" -eq 75', script)


if __name__ == "__main__":
    unittest.main()
