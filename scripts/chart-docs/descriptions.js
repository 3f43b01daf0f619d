// Prints {"<value path>": "<description>"} for every `## @param` in a values.yaml, parsed
// by the readme generator's own parser (the same one that writes the README table), so
// the schema descriptions and the table cannot read the comments differently. The
// generator's `--schema` output is not used: it drops `[object]` values, types number
// arrays as strings and carries none of the schema's constraints.
// Usage: node scripts/chart-docs/descriptions.js <values.yaml>   (needs `make tools`)
const path = require('path');

const pkg = path.resolve(__dirname, '../../.tools/node/node_modules/@bitnami/readme-generator-for-helm');
const config = require(`${pkg}/config.json`);
const { parseMetadataComments } = require(`${pkg}/lib/parser`);

const out = {};
for (const param of parseMetadataComments(process.argv[2], config).parameters) {
  if (param.name && !param.skip && !param.extra) out[param.name] = param.description;
}
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
