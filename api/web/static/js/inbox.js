// One inbox: every synced address together or one at a time, newest first, unread filter,
// search, endless scrolling over keyset pages, new mail appearing live; a message view
// with the sanitized HTML in a sandboxed iframe and remote images only on request.
import { gql, subscribe } from "/app/js/api.js";
import { h, person, replace, toast, when } from "/app/js/dom.js";

const PAGE = 50;
const LIST = `query Inbox($filter: InboxFilter, $first: Int, $after: String) {
  inbox(filter: $filter, first: $first, after: $after) {
    edges { node { id subject snippet date isRead isFlagged hasAttachments
      from { name address } account { id emailAddress } } }
    pageInfo { hasNextPage endCursor } } }`;
const ACCOUNTS = "query { mailAccounts { id emailAddress status } }";
const MESSAGE = `query Message($id: ID!, $remote: Boolean!) { message(id: $id) {
  id subject date isRead isFlagged messageId
  from { name address } to { name address } cc { name address }
  account { id emailAddress owner { name } } folder { name role }
  bodyText bodyHtml(allowRemoteImages: $remote)
  attachments { filename contentType size }
  thread { id subject date from { name address } } } }`;
const MARK = `mutation Mark($ids: [ID!]!, $read: Boolean, $flagged: Boolean) {
  markMessages(ids: $ids, read: $read, flagged: $flagged) {
    messages { id isRead isFlagged } userErrors { code message } } }`;
const COMPLETED = "subscription { syncCompleted { account { id } newMessages removedMessages updatedMessages } }";

// The message's document: the sanitized HTML, in an iframe with every sandbox flag off
// (no scripts, no forms, an opaque origin), links opening outside the app.
function frameDocument(html) {
  return `<!doctype html><html><head><meta charset="utf-8"><base target="_blank">
<style>body{font:15px/1.45 system-ui,sans-serif;margin:.6rem;color:#1d2330;word-wrap:break-word}img{max-width:100%}</style>
</head><body>${html}</body></html>`;
}

export async function inboxView(main, [messageId]) {
  const accounts = (await gql(ACCOUNTS)).mailAccounts;
  const filter = { accountIds: null, unread: null, search: null };
  const switcher = h("select", { id: "account-switcher", "aria-label": "Account" },
    h("option", { value: "" }, "All addresses"),
    accounts.map((a) => h("option", { value: a.id }, a.emailAddress)));
  const unread = h("input", { type: "checkbox", id: "unread-only" });
  const search = h("input", { type: "search", id: "search", placeholder: "Search mail", "aria-label": "Search mail", maxlength: 500 });
  const list = h("ul", { class: "list", id: "messages", "aria-label": "Messages" });
  const more = h("li", { class: "hint", id: "more" });
  const reader = h("section", { class: "reader card", id: "reader", "aria-label": "Message" },
    h("p", { class: "hint" }, "Choose a message."));
  replace(main,
    h("div", { class: "row card" }, switcher,
      h("label", { class: "row", for: "unread-only" }, unread, "Unread only"),
      h("form", { role: "search", onsubmit: (e) => { e.preventDefault(); filter.search = search.value.trim() || null; reload(); } },
        search, h("button", { type: "submit" }, "Search"))),
    h("div", { class: "inbox" }, list, reader));

  let cursor = null;
  let hasNext = false;
  let loading = false;
  let generation = 0;
  let selected = messageId || null;

  function item(m) {
    return h("li", { class: [m.isRead ? "" : "unread", m.id === selected ? "selected" : ""].join(" "), dataset: { id: m.id } },
      h("button", { type: "button", onclick: () => { location.hash = `#/inbox/${encodeURIComponent(m.id)}`; } },
        h("div", { class: "meta" }, h("span", {}, m.from ? (m.from.name || m.from.address) : "(no sender)"),
          h("time", { datetime: m.date }, when(m.date))),
        h("div", { class: "subject" }, m.isFlagged ? "★ " : "", m.subject || "(no subject)", m.hasAttachments ? " 📎" : ""),
        h("div", { class: "snippet" }, m.snippet),
        accounts.length > 1 || !filter.accountIds ? h("div", { class: "hint" }, m.account.emailAddress) : null));
  }

  async function page(first) {
    if (loading) return;
    loading = true;
    const mine = generation;
    try {
      const vars = { filter: { ...filter }, first: PAGE, after: first ? null : cursor };
      const data = (await gql(LIST, vars)).inbox;
      if (mine !== generation) return;
      if (first) list.replaceChildren();
      more.remove();
      list.append(...data.edges.map((e) => item(e.node)));
      cursor = data.pageInfo.endCursor;
      hasNext = data.pageInfo.hasNextPage;
      more.textContent = hasNext ? "Loading more…" : (list.children.length ? "No more messages." : "No messages.");
      list.append(more);
    } finally {
      loading = false;
    }
  }

  function reload() {
    generation += 1;
    cursor = null;
    return page(true);
  }

  switcher.addEventListener("change", () => { filter.accountIds = switcher.value ? [switcher.value] : null; reload(); });
  unread.addEventListener("change", () => { filter.unread = unread.checked ? true : null; reload(); });
  list.addEventListener("scroll", () => {
    if (hasNext && list.scrollTop + list.clientHeight >= list.scrollHeight - 200) page(false);
  });

  async function show(id, remote = false) {
    selected = id;
    list.querySelectorAll("li.selected").forEach((li) => li.classList.remove("selected"));
    list.querySelector(`li[data-id="${CSS.escape(id)}"]`)?.classList.add("selected");
    const m = (await gql(MESSAGE, { id, remote })).message;
    if (!m) { replace(reader, h("p", { class: "error" }, "This message is not available.")); return; }
    if (!m.isRead) mark(m, { read: true });
    const body = m.bodyHtml != null
      ? h("iframe", { sandbox: "", title: "Message body", srcdoc: frameDocument(m.bodyHtml), referrerpolicy: "no-referrer" })
      : h("pre", {}, m.bodyText || "");
    replace(reader,
      h("h2", {}, m.subject || "(no subject)"),
      h("p", { class: "hint" }, "From ", person(m.from), " · to ", m.to.map(person).join(", "),
        m.cc.length ? ` · cc ${m.cc.map(person).join(", ")}` : "", " · ", new Date(m.date).toLocaleString()),
      h("p", { class: "hint" }, `In ${m.account.emailAddress} (${m.folder.name})`),
      h("div", { class: "row" },
        h("button", { type: "button", id: "toggle-read", onclick: () => mark(m, { read: !m.isRead }) }, m.isRead ? "Mark unread" : "Mark read"),
        h("button", { type: "button", id: "toggle-flag", onclick: () => mark(m, { flagged: !m.isFlagged }) }, m.isFlagged ? "Unflag" : "Flag"),
        h("a", { href: `#/compose/reply/${encodeURIComponent(m.id)}` }, "Reply"),
        h("a", { href: `#/compose/forward/${encodeURIComponent(m.id)}` }, "Forward"),
        m.bodyHtml != null && !remote
          ? h("button", { type: "button", id: "remote-images", onclick: () => show(id, true) }, "Show remote images") : null),
      m.attachments.length ? h("ul", { class: "attachments" }, m.attachments.map((a) =>
        h("li", {}, `${a.filename || "(unnamed)"} · ${a.contentType} · ${Math.ceil(a.size / 1024)} kB`))) : null,
      body,
      m.thread.length > 1 ? h("details", {}, h("summary", {}, `Conversation (${m.thread.length})`),
        h("ul", {}, m.thread.map((t) => h("li", {}, h("a", { href: `#/inbox/${encodeURIComponent(t.id)}` },
          `${when(t.date)} · ${t.from ? t.from.name || t.from.address : ""} · ${t.subject || ""}`))))) : null);
  }

  async function mark(m, change) {
    const result = (await gql(MARK, { ids: [m.id], ...change })).markMessages;
    if (result.userErrors.length) { toast(result.userErrors[0].message); return; }
    const updated = result.messages[0];
    Object.assign(m, updated);
    const li = list.querySelector(`li[data-id="${CSS.escape(m.id)}"]`);
    li?.classList.toggle("unread", !updated.isRead);
    const read = document.getElementById("toggle-read");
    if (read) read.textContent = updated.isRead ? "Mark unread" : "Mark read";
    const flag = document.getElementById("toggle-flag");
    if (flag) flag.textContent = updated.isFlagged ? "Unflag" : "Flag";
  }

  await reload();
  if (selected) await show(selected);
  const stop = subscribe(COMPLETED, {}, (data) => {
    const done = data.syncCompleted;
    if (done.newMessages || done.removedMessages || done.updatedMessages) reload();
  });
  stop.update = ([id]) => (id ? show(id) : null);
  return stop;
}
