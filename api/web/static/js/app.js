// The Sales Inbox: sign-in, the header, and a router over #/inbox, #/accounts,
// #/compose and #/usage. Each view renders into <main> and returns a cleanup function.
import { gql, setToken, token } from "/app/js/api.js";
import { h, replace, toast } from "/app/js/dom.js";
import { accountsView } from "/app/js/accounts.js";
import { inboxView } from "/app/js/inbox.js";
import { composeView } from "/app/js/compose.js";
import { usageView } from "/app/js/usage.js";

const ME = `query Me { me { id name email role company { name plan accountLimit }
  defaultAccount { id emailAddress } } }`;

const root = document.getElementById("app");
export const state = { me: null };
let cleanup = () => {};

function signIn(message) {
  const input = h("input", {
    id: "token", type: "password", autocomplete: "off", required: true, size: 40,
    "aria-describedby": "token-hint",
  });
  const error = h("p", { class: "error", role: "alert" }, message || "");
  const form = h("form", {
    class: "card signin", "aria-labelledby": "signin-title",
    onsubmit: async (event) => {
      event.preventDefault();
      setToken(input.value.trim());
      await start();
    },
  },
    h("h1", { id: "signin-title" }, "Sales Inbox"),
    h("label", { for: "token" }, "API token"),
    input,
    h("p", { id: "token-hint", class: "hint" },
      "From ", h("code", {}, "mailsync create-user"), " or ", h("code", {}, "mailsync issue-token"),
      ". It is kept for this browser tab only."),
    error,
    h("button", { class: "primary", type: "submit" }, "Sign in"),
  );
  replace(root, h("main", {}, form));
  input.focus();
}

const VIEWS = {
  inbox: { title: "Inbox", render: inboxView },
  accounts: { title: "Mail accounts", render: accountsView },
  compose: { title: "Compose", render: composeView },
  usage: { title: "Team usage", render: usageView, admin: true },
};

function shell() {
  const me = state.me;
  const links = Object.entries(VIEWS)
    .filter(([, view]) => !view.admin || me.role === "ADMIN")
    .map(([name, view]) => h("a", { href: `#/${name}`, dataset: { view: name } }, view.title));
  const header = h("header", { class: "top" },
    h("h1", {}, "Sales Inbox"),
    h("nav", { "aria-label": "Main" }, links),
    h("span", { class: "who", id: "who" },
      `${me.name} · ${me.company.name} · ${me.company.plan}`),
    h("button", { type: "button", onclick: () => { setToken(null); signIn(); } }, "Sign out"),
  );
  const main = h("main", { id: "main" });
  replace(root, header, main);
  return { links, main };
}

let layout = null;
let current = null;
let navigations = 0;

async function route() {
  if (!state.me || !layout) return;
  const [name, ...rest] = (location.hash.replace(/^#\/?/, "") || "inbox").split("/");
  const view = VIEWS[name] && (!VIEWS[name].admin || state.me.role === "ADMIN") ? name : "inbox";
  const args = rest.map(decodeURIComponent);
  if (view === current && typeof cleanup.update === "function") {
    await cleanup.update(args);  // e.g. another message in the same inbox: keep the list
    return;
  }
  current = view;
  const navigation = ++navigations;
  for (const link of layout.links) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  cleanup();
  cleanup = () => {};
  document.title = `${VIEWS[view].title} · Sales Inbox`;
  // Each navigation renders into its own element: a view still loading when the user
  // moves on writes into a detached one, and its subscriptions are ended at once.
  const slot = h("div", { class: "view" });
  replace(layout.main, slot);
  let done;
  try {
    done = await VIEWS[view].render(slot, args);
  } catch (error) {
    if (navigation === navigations) replace(slot, h("p", { class: "error", role: "alert" }, error.message));
    return;
  }
  if (typeof done !== "function") return;
  if (navigation === navigations) cleanup = done;
  else done();
}

export async function refreshMe() {
  state.me = (await gql(ME)).me;
  const who = document.getElementById("who");
  if (who) who.textContent = `${state.me.name} · ${state.me.company.name} · ${state.me.company.plan}`;
  return state.me;
}

// Back from an OAuth2 sign-in: /oauth/callback sent the browser to MAILSYNC_OAUTH_APP_URL
// with ?accountId= or ?error=<CODE>; say what happened and drop it from the address bar.
const OAUTH_ERRORS = {
  ACCESS_DENIED: "the sign-in was declined",
  INVALID_STATE: "the sign-in link expired or was already used; try again",
  ACCOUNT_MISMATCH: "you signed in as another address than the account's",
  PLAN_LIMIT_REACHED: "your plan's account limit is reached",
  DUPLICATE_ACCOUNT: "that account is already connected",
};

function oauthReturn() {
  const params = new URLSearchParams(location.search);
  const accountId = params.get("accountId");
  const error = params.get("error");
  if (!accountId && !error) return null;
  history.replaceState(null, "", `${location.pathname}#/accounts`);
  return error
    ? `The account was not connected: ${OAUTH_ERRORS[error] || "the provider's sign-in failed"} (${error}).`
    : "Account connected.";
}

async function start() {
  current = null;
  const returned = oauthReturn();
  if (!token()) return signIn();
  try {
    await refreshMe();
  } catch (error) {
    setToken(null);
    return signIn(error.code === "UNAUTHENTICATED"
      ? "That token is not valid (revoked, expired or mistyped)." : error.message);
  }
  layout = shell();
  await route();
  if (returned) toast(returned);
}

window.addEventListener("hashchange", route);
start();
