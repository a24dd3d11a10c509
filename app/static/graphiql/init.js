// Starts GraphiQL on the page rendered by app/api/graphiql.py.
// It is a file rather than an inline <script> so the page's CSP can be script-src 'self';
// the endpoint and default query come from data attributes, never from script text.
(function () {
  "use strict";

  var root = document.getElementById("graphiql");
  var endpoint = root.dataset.endpoint;
  var lib = window.TenantryGraphiQL; // set by graphiql-bundle.min.js

  // GraphiQL calls this for every operation, introspection included. `opts.headers` is the
  // object the user typed in the Headers editor, e.g. {"Authorization": "Bearer ..."}.
  async function fetcher(params, opts) {
    var headers = new Headers((opts && opts.headers) || {});
    // We always send JSON, whatever the user typed; set() replaces any case variant.
    headers.set("content-type", "application/json");
    if (!headers.has("accept")) headers.set("accept", "application/json");
    var response = await fetch(endpoint, {
      method: "POST",
      headers: headers,
      body: JSON.stringify(params),
      credentials: "same-origin",
    });
    var text = await response.text();
    try {
      return JSON.parse(text);
    } catch (_) {
      // A proxy error page or similar: show it in the result pane instead of failing silently.
      return {
        errors: [{ message: "HTTP " + response.status + ": " + text.slice(0, 500) }],
      };
    }
  }

  // GraphiQL 3's history saves each run's headers (bearer tokens included) in localStorage even
  // with shouldPersistHeaders off. This storage strips them from history entries on the way in;
  // everything else (queries, variables, tabs) is stored as GraphiQL wants, in this browser only.
  var HISTORY_KEYS = ["graphiql:queries", "graphiql:favorites"];

  function withoutHeaders(value) {
    var stored = JSON.parse(value); // {"queries": [{query, variables, headers, ...}, ...]}
    Object.keys(stored).forEach(function (list) {
      stored[list].forEach(function (entry) {
        delete entry.headers;
      });
    });
    return JSON.stringify(stored);
  }

  function graphiqlKeys() {
    return Object.keys(localStorage).filter(function (key) {
      return key.indexOf("graphiql:") === 0;
    });
  }

  var storage = {
    getItem: function (key) {
      return localStorage.getItem(key);
    },
    setItem: function (key, value) {
      if (HISTORY_KEYS.indexOf(key) >= 0) {
        try {
          value = withoutHeaders(value);
        } catch (_) {
          return; // an unexpected format: better no history than a leaked token
        }
      }
      localStorage.setItem(key, value);
    },
    removeItem: function (key) {
      localStorage.removeItem(key);
    },
    clear: function () {
      graphiqlKeys().forEach(function (key) {
        localStorage.removeItem(key);
      });
    },
    get length() {
      return graphiqlKeys().length;
    },
  };

  lib.createRoot(root).render(
    lib.React.createElement(lib.GraphiQL, {
      fetcher: fetcher,
      defaultQuery: root.dataset.defaultQuery,
      isHeadersEditorEnabled: true,
      storage: storage,
      // Tokens typed in the Headers editor must not outlive the tab in localStorage.
      shouldPersistHeaders: false,
      // Open on the Headers editor: pasting a bearer token is the first thing people do.
      defaultEditorToolsVisibility: "headers",
    }),
  );
})();
