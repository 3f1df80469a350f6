// The extension's files as ComfyUI serves them: one mechanism, ES modules, pure logic apart.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const JS = join(ROOT, "js");

function jsFiles(dir = JS) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return jsFiles(path);
    return name.endsWith(".js") ? [path] : [];
  });
}

function importsOf(path) {
  const source = readFileSync(path, "utf8");
  return [...source.matchAll(/^\s*import\s+(?:[^"']*?\s+from\s+)?["']([^"']+)["']/gm)].map((match) => match[1]);
}

test("every js/ file parses as an ES module", () => {
  const files = jsFiles();
  assert.ok(files.length >= 5, "the extension is there");
  for (const file of files) {
    execFileSync(process.execPath, ["--check", file], { stdio: "pipe" });
  }
});

test("relative imports resolve to files that ComfyUI serves", () => {
  for (const file of jsFiles()) {
    for (const spec of importsOf(file)) {
      if (!spec.startsWith(".")) assert.fail(`${relative(ROOT, file)} imports bare '${spec}': the browser cannot resolve it`);
      if (spec.startsWith("../../scripts/")) continue; // the front-end's own modules, /scripts/*.js
      const target = resolve(dirname(file), spec);
      assert.ok(target.startsWith(JS), `${relative(ROOT, file)} imports outside js/: ${spec}`);
      assert.ok(existsSync(target), `${relative(ROOT, file)} imports a missing file: ${spec}`);
    }
  }
});

test("the app is imported the way extensions do, only by the entry module", () => {
  const importers = jsFiles().filter((file) => importsOf(file).some((spec) => spec.includes("/scripts/")));
  assert.deepEqual(
    importers.map((file) => relative(JS, file)),
    ["portrait_polish.js"],
  );
  assert.ok(importsOf(join(JS, "portrait_polish.js")).includes("../../scripts/app.js"));
});

test("the pure modules and the DOM widgets load in Node (no app, no side effects at import)", async () => {
  for (const file of jsFiles().filter((path) => !path.endsWith("portrait_polish.js"))) {
    const module = await import(file);
    assert.ok(Object.keys(module).length > 0, `${relative(ROOT, file)} exports something`);
  }
});

test("js/ is served by one mechanism only: WEB_DIRECTORY, no [tool.comfy] web", () => {
  const init = readFileSync(join(ROOT, "__init__.py"), "utf8");
  assert.match(init, /^WEB_DIRECTORY\s*=\s*["']\.\/js["']/m);
  const pyproject = readFileSync(join(ROOT, "pyproject.toml"), "utf8");
  const comfySection = pyproject.split(/^\[tool\.comfy\]/m)[1]?.split(/^\[/m)[0] ?? "";
  assert.doesNotMatch(comfySection, /^\s*web\s*=/m, "a [tool.comfy] web entry would load every script twice");
});
