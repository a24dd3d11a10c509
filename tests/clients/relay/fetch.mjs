// Relay's runtime (no React) against the live server: fetches refetchable fragments through
// the queries the compiler generated, then reads each fragment from Relay's normalised store.
//
// Input (stdin, JSON): {url, token, artifacts, steps: [{query, fragment, variables}]}, where
// `artifacts` is the compiler's output directory. Output (stdout, JSON): each step's fragment
// data as Relay reads it.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import {
  Environment,
  Network,
  RecordSource,
  Store,
  createOperationDescriptor,
  fetchQuery,
  getSelector,
} from 'relay-runtime';

const input = JSON.parse(readFileSync(0, 'utf8'));
// The compiler writes CommonJS modules; load them as a bundler would.
const artifact = (name) => createRequire(`${input.artifacts}/`)(`./${name}.graphql.js`);

async function fetchFn(params, variables) {
  const response = await fetch(input.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json;q=0.9',
      authorization: `Bearer ${input.token}`,
    },
    body: JSON.stringify({ query: params.text, operationName: params.name, variables }),
  });
  return response.json();
}

const environment = new Environment({
  network: Network.create(fetchFn),
  store: new Store(new RecordSource()),
});

const results = [];
for (const step of input.steps) {
  const query = artifact(step.query);
  await fetchQuery(environment, query, step.variables).toPromise();
  const operation = createOperationDescriptor(query, step.variables);
  const root = environment.lookup(operation.fragment);
  // A refetch query of a Node fragment spreads it under `node`; of a Query fragment, at the root.
  const owner = root.data.node === undefined ? root.data : root.data.node;
  const fragment = environment.lookup(getSelector(artifact(step.fragment), owner));
  results.push(fragment.data);
}
process.stdout.write(JSON.stringify(results));
