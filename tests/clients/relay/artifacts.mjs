// What the Relay compiler generated, as data: each fragment's metadata (connections,
// refetch) and each query's text. Input (stdin, JSON): {artifacts}; output: {name: …}.
import { createRequire } from 'node:module';
import { readFileSync, readdirSync } from 'node:fs';

const { artifacts } = JSON.parse(readFileSync(0, 'utf8'));
const load = createRequire(`${artifacts}/`);
// The refetch operation itself is described under its own name.
const refetching = ({ connection, refetch: { operation, ...refetch } }) => ({ connection, refetch });
const described = {};
for (const file of readdirSync(artifacts)) {
  const node = load(`./${file}`);
  const name = file.replace(/\.graphql\.js$/, '');
  described[name] =
    node.kind === 'Request'
      ? { kind: node.kind, text: node.params.text }
      : { kind: node.kind, type: node.type, ...refetching(node.metadata) };
}
process.stdout.write(JSON.stringify(described));
