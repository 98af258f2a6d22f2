// Mail accounts: add one (provider presets, each error next to its field), the plan's
// limit, start sync with its three choices, live status and progress, pause, resume,
// reconnect, remove, and the default account.
import { gql, onReconnect, subscribe } from "/app/js/api.js";
import { h, replace, statusBadge, toast, when } from "/app/js/dom.js";
import { refreshMe, state } from "/app/js/app.js";

const ACCOUNT_FIELDS = `id emailAddress displayName status sharing labels pastSync lastError
  lastSyncedAt isDefault messageCount authMethod realtime folders { name role selected messageCount }`;
const ACCOUNTS = `query Accounts { mailAccounts { ${ACCOUNT_FIELDS} }
  me { defaultAccount { id } company { plan accountLimit } }
  oauthProviders { provider name configured } }`;
const OAUTH = `mutation($input: StartOAuthConnectionInput!) { startOAuthConnection(input: $input) {
  authorizationUrl userErrors { code field message } } }`;
const ADD = `mutation Add($input: AddMailAccountInput!) { addMailAccount(input: $input) {
  account { id } userErrors { code field message } } }`;
const START = `mutation Start($input: StartSyncInput!) { startSync(input: $input) {
  account { id status } userErrors { code field message } } }`;
const SIMPLE = (name) => `mutation($id: ID!) { ${name}(accountId: $id) {
  userErrors { code field message } } }`;
const RECONNECT = `mutation($input: ReconnectMailAccountInput!) { reconnectMailAccount(input: $input) {
  account { id status } userErrors { code field message } } }`;
const SET_DEFAULT = `mutation($id: ID) { setDefaultAccount(accountId: $id) {
  userErrors { code message } } }`;
const STATUS = "subscription { accountStatusChanged { id status lastError lastSyncedAt } }";
const PROGRESS = "subscription { syncProgress { account { id } folder fetched total } }";

// Well-known providers: the servers a user would otherwise look up.
export const PROVIDERS = {
  "gmail.com": { imap: ["imap.gmail.com", 993, "SSL"], smtp: ["smtp.gmail.com", 465, "SSL"] },
  "googlemail.com": { imap: ["imap.gmail.com", 993, "SSL"], smtp: ["smtp.gmail.com", 465, "SSL"] },
  "outlook.com": { imap: ["outlook.office365.com", 993, "SSL"], smtp: ["smtp.office365.com", 587, "STARTTLS"] },
  "hotmail.com": { imap: ["outlook.office365.com", 993, "SSL"], smtp: ["smtp.office365.com", 587, "STARTTLS"] },
  "office365.com": { imap: ["outlook.office365.com", 993, "SSL"], smtp: ["smtp.office365.com", 587, "STARTTLS"] },
  "yahoo.com": { imap: ["imap.mail.yahoo.com", 993, "SSL"], smtp: ["smtp.mail.yahoo.com", 465, "SSL"] },
  "icloud.com": { imap: ["imap.mail.me.com", 993, "SSL"], smtp: ["smtp.mail.me.com", 587, "STARTTLS"] },
  "fastmail.com": { imap: ["imap.fastmail.com", 993, "SSL"], smtp: ["smtp.fastmail.com", 465, "SSL"] },
};
const PAST = [["NONE", "No past mail"], ["ONE_MONTH", "1 month"], ["THREE_MONTHS", "3 months"],
  ["SIX_MONTHS", "6 months"], ["ONE_YEAR", "1 year"], ["ALL", "All past mail"]];

function input(id, label, attrs = {}, hint) {
  return h("div", { class: "field" },
    h("label", { for: id }, label, hint ? h("span", { class: "hint" }, ` ${hint}`) : null),
    h("input", { id, name: id, "aria-describedby": `${id}-error`, ...attrs }),
    h("div", { class: "field-error", id: `${id}-error`, role: "alert" }));
}

function select(id, label, options, value) {
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    h("select", { id, name: id, "aria-describedby": `${id}-error` },
      options.map(([v, text]) => h("option", { value: v, selected: v === value }, text))),
    h("div", { class: "field-error", id: `${id}-error`, role: "alert" }));
}

function serverFields(kind, title, optional) {
  return h("fieldset", { class: "card" },
    h("legend", {}, title),
    h("div", { class: "grid2" },
      input(`${kind}-host`, "Host", { required: !optional, autocomplete: "off" }),
      input(`${kind}-port`, "Port", { type: "number", min: 1, max: 65535 }),
      select(`${kind}-security`, "Security", [["SSL", "SSL/TLS"], ["STARTTLS", "STARTTLS"], ["NONE", "None (plain)"]], "SSL"),
      input(`${kind}-username`, "Username", { autocomplete: "off", required: !optional }),
      input(`${kind}-password`, "Password", { type: "password", autocomplete: "new-password", required: !optional })));
}

// `signIn`: the OAuth2 buttons (or null), offered right after the address they hint.
function addForm(onAdded, signIn) {
  const error = h("p", { class: "error", role: "alert", id: "add-error" });
  const form = h("form", { class: "card", id: "add-account", "aria-labelledby": "add-title", novalidate: true },
    h("h2", { id: "add-title" }, "Add a mail account"),
    input("emailAddress", "Email address", { type: "email", required: true, autocomplete: "off" }),
    signIn,
    input("displayName", "Name shown to recipients", {}, "(optional)"),
    serverFields("imap", "Incoming mail (IMAP)", false),
    h("label", { class: "row" }, h("input", { type: "checkbox", id: "with-smtp", checked: true }),
      "Send mail from this account (SMTP)"),
    serverFields("smtp", "Outgoing mail (SMTP)", true),
    error,
    h("button", { class: "primary", type: "submit", id: "add-submit" }, "Verify and add"));
  const $ = (id) => form.querySelector(`#${id}`);
  $("emailAddress").addEventListener("change", () => {
    const address = $("emailAddress").value.trim();
    const preset = PROVIDERS[address.split("@")[1]?.toLowerCase()];
    if (!preset) return;
    for (const kind of ["imap", "smtp"]) {
      const [host, port, security] = preset[kind];
      if (!$(`${kind}-host`).value) $(`${kind}-host`).value = host;
      if (!$(`${kind}-port`).value) $(`${kind}-port`).value = port;
      $(`${kind}-security`).value = security;
      if (!$(`${kind}-username`).value) $(`${kind}-username`).value = address;
    }
  });
  $("with-smtp").addEventListener("change", () => {
    form.querySelectorAll("fieldset")[1].disabled = !$("with-smtp").checked;
  });
  const server = (kind) => {
    const port = $(`${kind}-port`).value;
    return {
      host: $(`${kind}-host`).value.trim(),
      port: port ? Number(port) : null,
      security: $(`${kind}-security`).value,
      username: $(`${kind}-username`).value.trim() || null,
      password: $(`${kind}-password`).value || null,
    };
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    form.querySelectorAll(".field-error").forEach((el) => { el.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    error.textContent = "";
    const submit = $("add-submit");
    submit.disabled = true;
    submit.textContent = "Verifying the login…";
    const payload = {
      emailAddress: $("emailAddress").value.trim(),
      displayName: $("displayName").value.trim() || null,
      imap: server("imap"),
      smtp: $("with-smtp").checked && $("smtp-host").value.trim() ? server("smtp") : null,
    };
    try {
      const result = (await gql(ADD, { input: payload })).addMailAccount;
      if (result.userErrors.length) {
        for (const e of result.userErrors) {
          const id = (e.field || "").replace(".", "-");
          const target = id && form.querySelector(`#${CSS.escape(id)}-error`);
          if (target) {
            target.textContent = `${e.message} (${e.code})`;
            form.querySelector(`#${CSS.escape(id)}`)?.setAttribute("aria-invalid", "true");
          } else {
            error.textContent = `${e.message} (${e.code})`;
          }
        }
        return;
      }
      form.reset();
      toast("Account added: choose what to sync.");
      onAdded(result.account.id);
    } catch (e) {
      error.textContent = e.message;
    } finally {
      submit.disabled = false;
      submit.textContent = "Verify and add";
    }
  });
  return form;
}

function startSyncForm(account, onStarted) {
  const folders = account.folders.length ? account.folders : [{ name: "INBOX", role: "INBOX" }];
  const error = h("p", { class: "error", role: "alert" });
  const boxes = folders.map((f) => h("label", { class: "row hint" },
    h("input", { type: "checkbox", value: f.name, checked: f.role === "INBOX" || f.role === "SENT" }),
    `${f.name}${f.role !== "OTHER" ? ` (${f.role.toLowerCase()})` : ""}`));
  const form = h("form", { class: "start-sync", "aria-label": `Start sync of ${account.emailAddress}` },
    h("fieldset", {}, h("legend", {}, "Folders to sync"), boxes),
    select(`sharing-${account.id}`, "Sharing", [["PRIVATE", "Private (only me)"], ["SHARED", "Shared with my company"]], "PRIVATE"),
    select(`past-${account.id}`, "Past mail", PAST, "ONE_MONTH"),
    error,
    h("button", { class: "primary", type: "submit" }, "Start sync"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const labels = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    const result = (await gql(START, { input: {
      accountId: account.id, labels,
      sharing: form.querySelector(`#sharing-${CSS.escape(account.id)}`).value,
      pastSync: form.querySelector(`#past-${CSS.escape(account.id)}`).value,
    } })).startSync;
    if (result.userErrors.length) error.textContent = result.userErrors.map((e) => e.message).join(" ");
    else onStarted();
  });
  return form;
}

export async function accountsView(main) {
  const list = h("div", { id: "accounts" });
  const limit = h("p", { id: "plan-limit" });
  const formSlot = h("div");
  replace(main, h("h2", {}, "Mail accounts"), limit, list, formSlot);
  const progress = new Map();
  let providers = [];

  async function act(query, vars, done) {
    const data = await gql(query, vars);
    const errors = Object.values(data)[0].userErrors || [];
    if (errors.length) toast(errors.map((e) => e.message).join(" "));
    else if (done) toast(done);
    await load();
  }

  // Reconnect after AUTH_FAILED: a new password (proven before it is stored), or the
  // OAuth2 provider's sign-in again.
  function reconnect(account) {
    if (account.authMethod !== "PASSWORD") {
      const provider = providers.find((p) => p.provider === account.authMethod);
      return h("button", { type: "button", class: "reconnect", onclick: () => oauth(account.authMethod, { accountId: account.id }) },
        `Reconnect with ${provider ? provider.name : account.authMethod}`);
    }
    const id = `reconnect-${account.id}`;
    const pw = h("input", { type: "password", id, autocomplete: "new-password", required: true, "aria-describedby": `${id}-error` });
    const error = h("div", { class: "field-error", id: `${id}-error`, role: "alert" });
    return h("form", { class: "reconnect", onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = "";
      const result = (await gql(RECONNECT, { input: { accountId: account.id, imapPassword: pw.value } })).reconnectMailAccount;
      if (result.userErrors.length) {
        error.textContent = result.userErrors.map((x) => `${x.message} (${x.code})`).join(" ");
        pw.setAttribute("aria-invalid", "true");
        pw.focus();
        return;
      }
      toast("Reconnected.");
      await load();
    } },
      h("label", { for: id }, `New password for ${account.emailAddress}`),
      h("div", { class: "row" }, pw, h("button", { type: "submit" }, "Reconnect")), error);
  }

  // Remove asks first, in the page (no browser dialog), and says what goes with it.
  function removeButton(account, actions) {
    const ask = h("button", { type: "button", class: "remove", onclick: () => {
      const cancel = h("button", { type: "button", onclick: () => { confirmBox.replaceWith(ask); ask.focus(); } }, "Cancel");
      const confirmBox = h("div", { class: "row confirm", role: "group", "aria-label": `Remove ${account.emailAddress}` },
        h("span", {}, `Remove ${account.emailAddress} and its synced mail? The mailbox itself is not touched.`),
        h("button", { type: "button", class: "danger", onclick: () => act(SIMPLE("removeMailAccount"), { id: account.id }, `${account.emailAddress} removed.`) }, "Remove for good"),
        cancel);
      ask.replaceWith(confirmBox);
      cancel.focus();
    } }, "Remove");
    actions.push(ask);
  }

  function progressBar(account) {
    const bar = progress.get(account.id);
    if (!bar) return null;
    const percent = bar.total ? Math.min(100, Math.round((100 * bar.fetched) / bar.total)) : 100;
    return h("div", { class: "row sync-progress" },
      h("progress", { max: 100, value: percent, "aria-label": `Sync progress of ${account.emailAddress}` }),
      h("span", { class: "hint progress-text" }, `${bar.folder}: ${bar.fetched} of ${bar.total} (${percent}%)`));
  }

  function row(account, defaultId) {
    const actions = [];
    if (account.status === "READY") actions.push(startSyncForm(account, load));
    if (["SYNCING", "ACTIVE", "ERROR"].includes(account.status)) {
      actions.push(h("button", { type: "button", onclick: () => act(SIMPLE("syncNow"), { id: account.id }, "Sync queued.") }, "Sync now"));
      actions.push(h("button", { type: "button", onclick: () => act(SIMPLE("pauseSync"), { id: account.id }, "Paused.") }, "Pause"));
    }
    if (account.status === "PAUSED") {
      actions.push(h("button", { type: "button", onclick: () => act(SIMPLE("resumeSync"), { id: account.id }, "Resumed.") }, "Resume"));
    }
    actions.push(account.id === defaultId
      ? h("button", { type: "button", onclick: () => act(SET_DEFAULT, { id: null }, "No default account now.") }, "Clear default")
      : h("button", { type: "button", onclick: () => act(SET_DEFAULT, { id: account.id }, "Default account set.") }, "Make default"));
    removeButton(account, actions);
    const live = ["SYNCING", "ACTIVE"].includes(account.status);
    return h("section", { class: "card account", dataset: { accountId: account.id }, "aria-label": account.emailAddress },
      h("div", { class: "row" },
        h("strong", {}, account.emailAddress),
        h("span", { class: "status-slot" }, statusBadge(account.status)),
        account.id === defaultId ? h("span", { class: "hint default-mark" }, "Default sender") : null,
        h("span", { class: "hint" }, account.sharing === "SHARED" ? "Shared" : "Private"),
        h("span", { class: "hint message-count" }, `${account.messageCount} messages`),
        live ? h("span", { class: "hint realtime" }, account.realtime === "IDLE" ? "New mail live (IDLE)" : "Checked at the interval") : null,
        account.lastSyncedAt ? h("span", { class: "hint" }, `synced ${when(account.lastSyncedAt)}`) : null),
      account.lastError ? h("p", { class: "error last-error" }, account.lastError) : null,
      account.status === "AUTH_FAILED" ? reconnect(account) : null,
      progressBar(account),
      h("div", { class: "row actions" }, actions));
  }

  async function oauth(provider, extra) {
    const result = (await gql(OAUTH, { input: { provider, ...extra } })).startOAuthConnection;
    if (result.userErrors.length) { toast(result.userErrors.map((e) => e.message).join(" ")); return; }
    location.assign(result.authorizationUrl);  // the provider sends the browser back to /oauth/callback
  }

  function oauthButtons() {
    const configured = providers.filter((p) => p.configured);
    if (!configured.length) return null;
    return h("div", { class: "oauth", id: "oauth", role: "group", "aria-labelledby": "oauth-title" },
      h("p", { id: "oauth-title" }, "Sign in with your provider (no password is stored), or fill in the servers below."),
      h("div", { class: "row" }, configured.map((p) => h("button", { type: "button", dataset: { provider: p.provider },
        onclick: () => oauth(p.provider, { loginHint: document.getElementById("emailAddress")?.value.trim() || null }) },
      `Sign in with ${p.name}`))));
  }

  async function load() {
    const data = await gql(ACCOUNTS);
    providers = data.oauthProviders;
    const count = data.mailAccounts.length;
    const max = data.me.company.accountLimit;
    limit.textContent = max === 0
      ? `Your plan (${data.me.company.plan}) does not include email sync.`
      : `${count} of ${max} accounts on the ${data.me.company.plan} plan.`;
    replace(list, data.mailAccounts.length
      ? data.mailAccounts.map((a) => row(a, data.me.defaultAccount?.id))
      : h("p", { class: "hint" }, "No mail accounts yet."));
    replace(formSlot, count < max ? addForm(load, oauthButtons()) : null);
    await refreshMe();
  }

  await load();
  const stops = [
    onReconnect(load),  // statuses that changed while the socket was down
    subscribe(STATUS, {}, () => load()),
    subscribe(PROGRESS, {}, (data) => {
      const p = data.syncProgress;
      progress.set(p.account.id, p);
      const section = list.querySelector(`[data-account-id="${CSS.escape(p.account.id)}"]`);
      const bar = section && list.querySelector(`[data-account-id="${CSS.escape(p.account.id)}"] .sync-progress`);
      if (!section) return;
      const account = { id: p.account.id, emailAddress: section.getAttribute("aria-label") };
      if (bar) bar.replaceWith(progressBar(account));
      else section.querySelector(".actions").before(progressBar(account));
    }),
  ];
  return () => stops.forEach((stop) => stop());
}

