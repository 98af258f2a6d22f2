// GraphiQL for mailsync: queries go to this page's own URL, subscriptions to the same URL
// over graphql-transport-ws. The API wants a bearer token: put it in the Headers tab as
// {"Authorization": "Bearer ms_..."} (kept in this browser's local storage).
"use strict";

(function () {
  const EXAMPLE_QUERY = `# mailsync's GraphQL API. Put your token in the Headers tab below:
#   {"Authorization": "Bearer ms_..."}
# then run this query with Ctrl-Enter (or the play button).
{
  me {
    email
    company { name plan accountLimit }
    mailAccounts { id emailAddress status }
  }
}
`;

  // ?q=...&variables=...&headers=... prefill the editors (not "query": a GET with
  // ?query= runs the query instead of opening GraphiQL).
  const parameters = new URLSearchParams(window.location.search);

  function updateURL(name, value) {
    if (value) {
      parameters.set(name, value);
    } else {
      parameters.delete(name);
    }
    const search = parameters.toString();
    history.replaceState(null, "", search ? "?" + search : window.location.pathname);
  }

  const url = window.location.href.split("?")[0].split("#")[0];
  const subscriptionUrl = new URL(url);
  subscriptionUrl.protocol = subscriptionUrl.protocol === "https:" ? "wss:" : "ws:";

  const fetcher = GraphiQL.createFetcher({ url, subscriptionUrl: subscriptionUrl.toString() });
  const explorer = GraphiQLPluginExplorer.explorerPlugin();

  function MailsyncGraphiQL() {
    const [query, setQuery] = React.useState(parameters.get("q") || EXAMPLE_QUERY);
    const [variables, setVariables] = React.useState(parameters.get("variables") || undefined);
    const [headers, setHeaders] = React.useState(parameters.get("headers") || undefined);

    return React.createElement(GraphiQL, {
      fetcher,
      plugins: [explorer],
      defaultEditorToolsVisibility: "headers",
      query,
      variables,
      headers,
      onEditQuery(value) {
        setQuery(value);
        updateURL("q", value);
      },
      onEditVariables(value) {
        setVariables(value);
        updateURL("variables", value);
      },
      onEditHeaders: setHeaders,
      inputValueDeprecation: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
    });
  }

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(MailsyncGraphiQL),
  );
})();
