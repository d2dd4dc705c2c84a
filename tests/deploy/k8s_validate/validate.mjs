// Validates every object of a rendered Kubernetes manifest stream (stdin, as
// `kubectl kustomize` prints it) against the upstream schemas: kubernetes-models
// (the Kubernetes OpenAPI) and @kubernetes-models/prometheus-operator (the
// Prometheus Operator's CRDs, for PodMonitor/ServiceMonitor). An object whose
// apiVersion/kind neither package knows is an error, never skipped.
// Prints one line per object; exits 1 on any invalid or unknown object.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const text = readFileSync(0, "utf8");
let failures = 0;
let count = 0;

async function modelClass(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const candidates = group === ""
    ? [`kubernetes-models/${version}`]
    : [`kubernetes-models/${group}/${version}`,
       `@kubernetes-models/prometheus-operator/${group}/${version}`];
  for (const module of candidates) {
    try {
      const exports = await import(module);
      if (exports[kind]) return exports[kind];
    } catch (e) {
      if (e.code !== "ERR_MODULE_NOT_FOUND" && e.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") throw e;
    }
  }
  return null;
}

for (const doc of parseAllDocuments(text)) {
  if (doc.errors.length) {
    console.log(`INVALID YAML: ${doc.errors.map((e) => e.message).join("; ")}`);
    failures++;
    continue;
  }
  const object = doc.toJS();
  if (object === null) continue;
  count++;
  const name = `${object.apiVersion}/${object.kind} ${object.metadata?.name}`;
  const Model = await modelClass(object.apiVersion ?? "", object.kind ?? "");
  if (!Model) {
    console.log(`UNKNOWN ${name}: no schema for this apiVersion and kind`);
    failures++;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`ok ${name}`);
  } catch (e) {
    console.log(`INVALID ${name}: ${e.message}`);
    failures++;
  }
}
if (count === 0) {
  console.log("no objects on stdin");
  failures++;
}
console.log(`${count} object(s), ${failures} failure(s)`);
process.exit(failures ? 1 : 0);
