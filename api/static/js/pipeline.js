// The pipeline configuration a person pastes into hloc or COLMAP (the service quotes the commands).

import { $ } from "./dom.js";

export const shellQuote = (word) =>
  /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;

export function colmapCommands(colmap) {
  const extract = [
    "colmap",
    "feature_extractor",
    "--database_path",
    "database.db",
    "--image_path",
    "images",
  ];
  const match = ["colmap", colmap.matcher, "--database_path", "database.db"];
  for (const [key, value] of Object.entries(colmap.feature_extractor ?? {}))
    extract.push(`--${key}`, value);
  for (const [key, value] of Object.entries(colmap.matcher_options ?? {}))
    match.push(`--${key}`, value);
  return [extract, match].map((argv) => argv.map(shellQuote).join(" "));
}

export function pipelineText(matcher) {
  const pipeline = matcher.pipeline;
  if (!pipeline) return "";
  const lines = [];
  if (pipeline.hloc) {
    const { features, matcher: name } = pipeline.hloc;
    lines.push("# hloc");
    if (features) {
      lines.push("from hloc import extract_features, match_features");
      lines.push(`feature_conf = extract_features.confs[${JSON.stringify(features)}]`);
      lines.push(`matcher_conf = match_features.confs[${JSON.stringify(name)}]`);
    } else {
      lines.push("from hloc import match_dense");
      lines.push(`matcher_conf = match_dense.confs[${JSON.stringify(name)}]`);
    }
  }
  if (pipeline.colmap) {
    if (lines.length) lines.push("");
    lines.push("# COLMAP", ...colmapCommands(pipeline.colmap));
  }
  if (lines.length) lines.push("");
  lines.push(`# ${matcher.name}: ${pipeline.project}`);
  if (pipeline.notes) lines.push(...pipeline.notes.split("\n").map((line) => `# ${line}`));
  return lines.join("\n");
}

export async function copyText(text, button) {
  const done = (label) => {
    button.textContent = label;
    setTimeout(() => (button.textContent = "Copy"), 1600);
  };
  try {
    await navigator.clipboard.writeText(text);
    done("Copied");
  } catch {
    // No clipboard outside a secure context: select the text so Ctrl+C copies it.
    const pre = button.closest(".pipeline")?.querySelector("pre");
    if (pre) window.getSelection().selectAllChildren(pre);
    done("Press Ctrl+C");
  }
}

