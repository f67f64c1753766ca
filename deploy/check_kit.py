#!/usr/bin/env python3
"""The deploy kit's offline checks that need parsing (deploy/check.sh runs them).

Usage: check_kit.py COMMAND WORK_DIR, from the repository root. Each command prints
`ok   ...` or `FAIL ...` lines and exits 1 if anything failed.

  kubernetes WORK   splits every manifest into objects; writes the core ones (a Job with
                    generateName gets that name, as the API server would give it one) to
                    WORK/k8s/*.yaml for kubernetes-validate, validates the Prometheus
                    operator's kinds against deploy/schemas/, and checks what no schema
                    can: the objects refer to each other correctly.
  dashboard WORK    parses the Grafana dashboard and writes every PromQL expression in it
                    (its variables given values) as a recording rule to
                    WORK/dashboard-rules.yml, for `promtool check rules`.
  configs WORK      writes every weir config of the kit to WORK/configs/ (with
                    admin_token_file pointed at WORK/token) and every rollout config to
                    WORK/rollouts/, and lists them in WORK/configs.txt and
                    WORK/rollouts.txt, for `weir check` and `weir canary --check`.
  compose WORK      checks docker/compose.yaml's references: the files it mounts exist,
                    images are pinned by version, the Dockerfile's COPY sources exist
                    and are not excluded by .dockerignore; writes WORK/context/ (what
                    the build sends) for a build check.
"""

import json
import os
import re
import shutil
import sys

import jsonschema
import yaml

KUBE = "deploy/kubernetes"
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "deploy/schemas/servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "deploy/schemas/prometheusrule.json",
}
# Applied by hand for each rollout, so not in kustomization.yaml.
NOT_IN_KUSTOMIZATION = {"canary-job.yaml"}

failures = 0


def ok(what):
    print(f"ok   {what}")


def fail(what):
    global failures
    failures += 1
    print(f"FAIL {what}")


def check(cond, what):
    (ok if cond else fail)(what)
    return cond


def load_objects():
    """Every object of every manifest: [(file, object)]."""
    objects = []
    for name in sorted(os.listdir(KUBE)):
        if not name.endswith(".yaml") or name == "kustomization.yaml":
            continue
        with open(os.path.join(KUBE, name)) as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    objects.append((name, doc))
    return objects


def name_of(obj):
    meta = obj.get("metadata", {})
    return meta.get("name") or meta.get("generateName", "").rstrip("-")


def pod_templates(objects):
    """(owner, pod template) of every Deployment and Job."""
    out = []
    for _, o in objects:
        if o["kind"] == "Deployment":
            out.append((f"Deployment/{name_of(o)}", o["spec"]["template"]))
        elif o["kind"] == "Job":
            out.append((f"Job/{name_of(o)}", o["spec"]["template"]))
    return out


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def kubernetes(work):
    objects = load_objects()
    os.makedirs(os.path.join(work, "k8s"), exist_ok=True)
    by_kind = {}
    for i, (file, o) in enumerate(objects):
        by_kind.setdefault(o["kind"], []).append(o)
        key = (o.get("apiVersion"), o.get("kind"))
        if key in CRD_SCHEMAS:
            with open(CRD_SCHEMAS[key]) as f:
                schema = json.load(f)
            errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(o), key=str)
            check(
                not errors,
                f"{file}: {o['kind']}/{name_of(o)} against {CRD_SCHEMAS[key]}"
                + "".join(f"\n     {'.'.join(map(str, e.path))}: {e.message}" for e in errors),
            )
            continue
        core = json.loads(json.dumps(o))
        if "generateName" in core["metadata"]:
            core["metadata"]["name"] = core["metadata"].pop("generateName") + "x1y2z"
        out = os.path.join(work, "k8s", f"{i:02d}-{file[:-5]}-{o['kind'].lower()}.yaml")
        with open(out, "w") as f:
            yaml.safe_dump(core, f, sort_keys=False)

    # kustomization.yaml lists every manifest but the rollout Job, and names the image.
    with open(os.path.join(KUBE, "kustomization.yaml")) as f:
        kust = yaml.safe_load(f)
    files = {n for n in os.listdir(KUBE) if n.endswith(".yaml") and n != "kustomization.yaml"}
    listed = set(kust.get("resources", []))
    check(listed == files - NOT_IN_KUSTOMIZATION,
          f"kustomization.yaml lists every manifest but {sorted(NOT_IN_KUSTOMIZATION)} "
          f"(listed {sorted(listed)}, present {sorted(files)})")
    images = {c["image"].split(":")[0] for _, t in pod_templates(objects) for c in t["spec"]["containers"]}
    check({i["name"] for i in kust.get("images", [])} >= images,
          f"kustomization.yaml `images` covers every container image ({sorted(images)})")

    # Every object's references resolve within the kit.
    names = {(o["kind"], name_of(o)) for _, o in objects}
    for owner, t in pod_templates(objects):
        labels = t["metadata"].get("labels", {})
        spec = t["spec"]
        for v in spec.get("volumes", []):
            if "configMap" in v:
                ref = v["configMap"]["name"]
                check(("ConfigMap", ref) in names, f"{owner}: volume {v['name']} names ConfigMap {ref} of the kit")
            if "persistentVolumeClaim" in v:
                ref = v["persistentVolumeClaim"]["claimName"]
                check(("PersistentVolumeClaim", ref) in names, f"{owner}: volume {v['name']} names PVC {ref} of the kit")
        mounts = {m["name"] for c in spec["containers"] for m in c.get("volumeMounts", [])}
        check(mounts <= {v["name"] for v in spec.get("volumes", [])}, f"{owner}: every volumeMount has its volume")
        sc = spec.get("securityContext", {})
        check(sc.get("runAsNonRoot") is True and sc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
              f"{owner}: runs as non-root with the RuntimeDefault seccomp profile")
        for c in spec["containers"]:
            csc = c.get("securityContext", {})
            check(csc.get("allowPrivilegeEscalation") is False and csc.get("readOnlyRootFilesystem") is True
                  and csc.get("capabilities", {}).get("drop") == ["ALL"],
                  f"{owner}/{c['name']}: no privilege escalation, read-only root, every capability dropped")
            res = c.get("resources", {})
            check({"cpu", "memory"} <= set(res.get("requests", {})) and "memory" in res.get("limits", {}),
                  f"{owner}/{c['name']}: CPU and memory requests, a memory limit")
        if owner.startswith("Deployment/"):
            check(any(d["spec"]["selector"]["matchLabels"] == labels or
                      selects(d["spec"]["selector"]["matchLabels"], labels)
                      for d in by_kind["Deployment"] if f"Deployment/{name_of(d)}" == owner),
                  f"{owner}: its selector matches its pod template's labels")

    weir_pods = [(o, t) for o, t in pod_templates(objects)
                 if any(c.get("args", [])[:1] == ["run"] for c in t["spec"]["containers"])]
    check(len(weir_pods) == 1, "one Deployment runs weir as a sidecar")
    owner, t = weir_pods[0]
    weir = next(c for c in t["spec"]["containers"] if c["args"][:1] == ["run"])
    check(weir["readinessProbe"]["httpGet"]["path"] == "/ready", f"{owner}: readiness on /ready")
    check(weir["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{owner}: liveness on /healthz")
    pre_stop = weir.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    check(pre_stop[:1] == ["sleep"] and int(pre_stop[1]) >= 3, f"{owner}: a preStop pause ({' '.join(pre_stop)})")
    config_map = next(o for _, o in objects if o["kind"] == "ConfigMap" and name_of(o) == "shop-weir")
    weir_cfg = yaml.safe_load(config_map["data"]["weir.yaml"])
    drain = int(str(weir_cfg.get("drain_timeout", "10s")).rstrip("s"))
    grace = t["spec"].get("terminationGracePeriodSeconds", 30)
    check(grace > int(pre_stop[1]) + drain,
          f"{owner}: terminationGracePeriodSeconds {grace} > preStop {pre_stop[1]} s + drain_timeout {drain} s")
    mount = next(m for m in weir["volumeMounts"] if m["mountPath"] == "/etc/weir")
    vol = next(v for v in t["spec"]["volumes"] if v["name"] == mount["name"])
    check("configMap" in vol and "subPath" not in mount,
          f"{owner}: the ConfigMap mounted as a directory (no subPath), so updates reach weir")
    token_file = weir_cfg["admin_token_file"]
    token_mount = next((m for m in weir["volumeMounts"] if token_file.startswith(m["mountPath"] + "/")), None)
    token_vol = token_mount and next(v for v in t["spec"]["volumes"] if v["name"] == token_mount["name"])
    check(token_vol is not None and "secret" in token_vol,
          f"{owner}: admin_token_file {token_file} comes from a Secret volume")
    secret = token_vol["secret"]["secretName"] if token_vol else None
    key = os.path.basename(token_file)
    with open(os.path.join(KUBE, "kustomization.yaml")) as f:
        kust_text = f.read()
    check(f"create secret generic {secret}" in kust_text and f"--from-literal={key}=" in kust_text,
          f"kustomization.yaml says how to make Secret {secret} with key {key}")
    ports = {p["name"]: p["containerPort"] for p in weir["ports"]}
    check(ports.get("http") == int(weir_cfg["listen"].rsplit(":", 1)[1])
          and ports.get("admin") == int(weir_cfg["admin"].rsplit(":", 1)[1]),
          f"{owner}: container ports http/admin are weir's listen/admin ports")
    annotations = t["metadata"].get("annotations", {})
    check(annotations.get("prometheus.io/scrape") == "true" and annotations.get("prometheus.io/port") == str(ports["admin"])
          and annotations.get("prometheus.io/path") == "/metrics", f"{owner}: Prometheus scrape annotations")

    pod_labels = [(o, tt["metadata"].get("labels", {}), tt) for o, tt in pod_templates(objects)]
    services = {name_of(s): s for s in by_kind.get("Service", [])}
    for name, s in services.items():
        sel = s["spec"]["selector"]
        matched = [(o, tt) for o, labels, tt in pod_labels if selects(sel, labels)]
        check(bool(matched), f"Service/{name} selects the pods of {[o for o, _ in matched]}")
        for p in s["spec"]["ports"]:
            target = p.get("targetPort")
            if isinstance(target, str):
                check(all(any(cp.get("name") == target for c in tt["spec"]["containers"] for cp in c.get("ports", []))
                          for _, tt in matched), f"Service/{name}: targetPort {target} is a named port of its pods")
    for dest, d in weir_cfg["destinations"].items():
        for ep in d["endpoints"]:
            host, port = ep.rsplit(":", 1)
            if host.startswith("127."):
                app = [c for c in t["spec"]["containers"] if c is not weir]
                check(any(f"{ep}" in " ".join(c.get("args", [])) for c in app),
                      f"weir destination {dest} ({ep}): the pod's application listens there")
            else:
                svc = services.get(host)
                check(svc is not None and any(p["port"] == int(port) for p in svc["spec"]["ports"]),
                      f"weir destination {dest} ({ep}): a Service of the kit with that port")
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        ref = hpa["spec"]["scaleTargetRef"]
        check((ref["kind"], ref["name"]) in names, f"HPA/{name_of(hpa)} scales {ref['kind']}/{ref['name']} of the kit")
        ann = hpa["metadata"].get("annotations", {})
        metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
        prefix = f"metric-config.pods.{metric}.json-path/"
        check(ann.get(prefix + "path") == "/stats/connections" and ann.get(prefix + "port") == str(ports["admin"])
              and ann.get(prefix + "json-key") == "$.downstream_active",
              f"HPA/{name_of(hpa)}: kube-metrics-adapter reads downstream_active from weir's /stats/connections")
        target = next(d for d in by_kind["Deployment"] if name_of(d) == ref["name"])
        check("replicas" not in target["spec"], f"Deployment/{ref['name']} leaves replicas to the HPA")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        sel = pdb["spec"]["selector"]["matchLabels"]
        check(any(selects(sel, labels) for o, labels, _ in pod_labels if o == owner),
              f"PodDisruptionBudget/{name_of(pdb)} covers {owner}")
    for sm in by_kind.get("ServiceMonitor", []):
        sel = sm["spec"]["selector"]["matchLabels"]
        svcs = [s for s in services.values() if selects(sel, s["metadata"].get("labels", {}))]
        ports_ok = all(any(p.get("name") == e["port"] for s in svcs for p in s["spec"]["ports"])
                       for e in sm["spec"]["endpoints"])
        check(bool(svcs) and ports_ok, f"ServiceMonitor/{name_of(sm)} selects {[name_of(s) for s in svcs]} and their port")
    with open("deploy/prometheus/weir-alerts.yml") as f:
        alerts = yaml.safe_load(f)
    for rule in by_kind.get("PrometheusRule", []):
        check(rule["spec"]["groups"] == alerts["groups"],
              f"PrometheusRule/{name_of(rule)} holds exactly the groups of deploy/prometheus/weir-alerts.yml")
        with open(os.path.join(work, "prometheusrule-groups.yml"), "w") as f:
            yaml.safe_dump({"groups": rule["spec"]["groups"]}, f, sort_keys=False)
    rollout_cm = next(o for _, o in objects if o["kind"] == "ConfigMap" and "canary.yaml" in o.get("data", {}))
    rollout = yaml.safe_load(rollout_cm["data"]["canary.yaml"])
    for src in rollout["target"]["admin"]:
        if isinstance(src, dict):
            host, port = src["discover"].rsplit(":", 1)
            svc = services.get(host)
            check(svc is not None and svc["spec"].get("clusterIP") == "None"
                  and any(p["port"] == int(port) for p in svc["spec"]["ports"]),
                  f"the rollout discovers {src['discover']}: a headless Service of the kit on weir's admin port")
    check(rollout["target"]["route"] in [r["name"] for r in weir_cfg["routes"]],
          f"the rollout's route `{rollout['target']['route']}` is a route of weir's config")
    check(rollout["target"]["token_file"] == token_file, "the rollout reads the admin token where weir does")
    job = next(o for _, o in objects if o["kind"] == "Job")
    jt = job["spec"]["template"]["spec"]
    jc = jt["containers"][0]
    check(jc["args"][:1] == ["canary"] and job["spec"].get("backoffLimit") == 0,
          "the rollout Job runs `weir canary` once (backoffLimit 0)")
    mounts = {m["mountPath"]: m["name"] for m in jc["volumeMounts"]}
    tvol = next(v for v in jt["volumes"] if v["name"] == mounts.get(os.path.dirname(token_file)))
    check(tvol.get("secret", {}).get("secretName") == secret, f"the rollout Job mounts Secret {secret} at {os.path.dirname(token_file)}")
    cfg_arg = jc["args"][jc["args"].index("--config") + 1]
    cvol = next(v for v in jt["volumes"] if v["name"] == mounts.get(os.path.dirname(cfg_arg)))
    check(cvol.get("configMap", {}).get("name") == name_of(rollout_cm)
          and os.path.basename(cfg_arg) in rollout_cm["data"],
          f"the rollout Job reads {cfg_arg} from ConfigMap {name_of(rollout_cm)}")


GRAFANA_VARS = {"$__rate_interval": "1m", "${datasource}": "prometheus", "$job": ".*", "$route": "primary"}


def dashboard(work):
    path = "deploy/grafana/weir-dashboard.json"
    with open(path) as f:
        d = json.load(f)
    ok(f"{path} is JSON")
    check(d.get("uid") == "weir" and d.get("title"), f"{path}: uid and title")
    variables = {v["name"] for v in d["templating"]["list"]}
    check({"datasource", "job", "route"} <= variables, f"{path}: variables datasource, job, route")
    exprs = []
    for p in d["panels"]:
        if p["type"] == "row":
            continue
        check(p.get("datasource", {}).get("uid") == "${datasource}", f"panel {p['title']!r} uses the datasource variable")
        check(bool(p.get("targets")), f"panel {p['title']!r} has queries")
        for t in p.get("targets", []):
            exprs.append((p["title"], t["expr"]))
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"]
            m = re.fullmatch(r"label_values\((.+), *(\w+)\)", q)
            check(m is not None, f"variable {v['name']}: label_values(SELECTOR, LABEL)")
            if m:
                exprs.append((f"variable {v['name']}", m.group(1)))
    for a in d["annotations"]["list"]:
        if "expr" in a:
            exprs.append((f"annotation {a['name']}", a["expr"]))
    wanted = ["Traffic share", "Requests/s", "5xx", "Latency", "Connections", "reload"]
    titles = " | ".join(p["title"] for p in d["panels"])
    for w in wanted:
        check(w.lower() in titles.lower(), f"{path}: a panel on {w}")
    rules = []
    for i, (title, expr) in enumerate(exprs):
        for k, v in GRAFANA_VARS.items():
            expr = expr.replace(k, v)
        check("$" not in expr, f"{title}: every variable given a value ({expr})")
        rules.append({"record": f"dashboard:expr_{i}", "expr": expr})
    with open(os.path.join(work, "dashboard-rules.yml"), "w") as f:
        yaml.safe_dump({"groups": [{"name": "weir-dashboard", "rules": rules}]}, f, sort_keys=False)
    with open(os.path.join(work, "dashboard-exprs.json"), "w") as f:
        json.dump([{"title": t, "expr": r["expr"]} for (t, _), r in zip(exprs, rules)], f, indent=1)
    ok(f"{len(rules)} PromQL expressions of the dashboard written for promtool")
    for prov in ["docker/grafana/provisioning/datasources/prometheus.yaml",
                 "docker/grafana/provisioning/dashboards/weir.yaml"]:
        with open(prov) as f:
            check(yaml.safe_load(f).get("apiVersion") == 1, f"{prov}: Grafana provisioning, apiVersion 1")


def configs(work):
    for sub in ["configs", "rollouts"]:
        os.makedirs(os.path.join(work, sub), exist_ok=True)
    token = os.path.join(work, "token")
    with open(token, "w") as f:
        f.write("a-token-for-the-check-0123456789\n")
    weir_configs = [("docker/weir/weir.yaml", open("docker/weir/weir.yaml").read()),
                    ("config/weir.yaml", open("config/weir.yaml").read())]
    rollouts = [("config/canary.yaml", open("config/canary.yaml").read())]
    for file, o in load_objects():
        if o["kind"] == "ConfigMap":
            for key, text in o["data"].items():
                where = f"{file}: ConfigMap {name_of(o)} key {key}"
                (rollouts if "stages:" in text else weir_configs).append((where, text))
    listed = {"configs": [], "rollouts": []}
    for sub, items in [("configs", weir_configs), ("rollouts", rollouts)]:
        for i, (where, text) in enumerate(items):
            text = re.sub(r"(?m)^(\s*admin_token_file:).*$", rf"\1 {token}", text)
            text = re.sub(r"(?m)^(\s*token_file:).*$", rf"\1 {token}", text)
            out = os.path.join(work, sub, f"{i}.yaml")
            with open(out, "w") as f:
                f.write(text)
            listed[sub].append(f"{out}\t{where}")
    for sub, lines in listed.items():
        with open(os.path.join(work, f"{sub}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
    ok(f"{len(weir_configs)} weir configs and {len(rollouts)} rollout configs found")


def compose(work):
    path = "docker/compose.yaml"
    with open(path) as f:
        c = yaml.safe_load(f)
    for name, s in c["services"].items():
        image = s.get("image", "")
        tag = image.rsplit(":", 1)[1] if ":" in image else ""
        check(re.fullmatch(r"v?\d+(\.\d+)+", tag) is not None, f"{path}: service {name} runs {image}, pinned by version")
        for v in s.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("."):
                check(os.path.exists(os.path.join("docker", src)), f"{path}: {name} mounts {src}, which exists")
    check(c["services"]["weir"]["volumes"][0].split(":")[1] == "/etc/weir",
          f"{path}: weir's config directory mounted at /etc/weir")
    with open("docker/Dockerfile") as f:
        dockerfile = f.read()
    froms = re.findall(r"(?m)^FROM\s+(\S+)", dockerfile)
    for image in froms:
        check(re.search(r":\d+(\.\d+)+", image) is not None, f"docker/Dockerfile: FROM {image} pinned by version")
    with open(".dockerignore") as f:
        patterns = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    check(patterns[:1] == ["*"], ".dockerignore excludes everything but what it names")
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    context = os.path.join(work, "context")
    os.makedirs(context, exist_ok=True)
    for line in re.findall(r"(?m)^COPY\s+(?!--from)(.+)$", dockerfile):
        *sources, _dest = line.split()
        for src in sources:
            src = src.rstrip("/")
            exists = os.path.exists(src)
            check(exists and src in allowed, f"docker/Dockerfile: COPY {src}: present and sent by .dockerignore")
            if exists:
                dst = os.path.join(context, src)
                if os.path.isdir(src):
                    shutil.copytree(src, dst, dirs_exist_ok=True)
                else:
                    shutil.copy(src, dst)
    ok(f"build context as the image build sees it written to {context}")


if __name__ == "__main__":
    command, work = sys.argv[1], sys.argv[2]
    {"kubernetes": kubernetes, "dashboard": dashboard, "configs": configs, "compose": compose}[command](work)
    sys.exit(1 if failures else 0)
