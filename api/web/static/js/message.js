// One conversation in the reader: its messages oldest first, the chosen one open with its
// sanitized HTML in a sandboxed iframe (no scripts, no forms, an opaque origin), remote
// images only once the user asks, inline images and attachments through the API's
// signed URLs; read/unread and flag per message, archive and delete per conversation.
import { gql } from "/app/js/api.js";
import { h, person, replace, toast, when } from "/app/js/dom.js";

const MESSAGE = `query Message($id: ID!, $remote: Boolean!) { message(id: $id) {
  id threadId subject date isRead isFlagged writeBackError bodyDownloaded
  from { name address } to { name address } cc { name address }
  account { id emailAddress owner { name } } folder { name role }
  bodyText bodyHtml(allowRemoteImages: $remote, inlineImages: true)
  attachments { id filename contentType size inline downloadUrl }
  thread { id subject date isRead isFlagged snippet from { name address } account { id } folder { role } } } }`;
const LINKS = "query Links($id: ID!) { message(id: $id) { attachments { id downloadUrl } } }";
const MARK = `mutation Mark($ids: [ID!]!, $read: Boolean, $flagged: Boolean) {
  markMessages(ids: $ids, read: $read, flagged: $flagged) {
    messages { id isRead isFlagged } userErrors { code message } } }`;
const MOVE = `mutation Move($threadIds: [ID!], $fromRole: FolderRole, $to: MoveTargetInput!) {
  moveMessages(threadIds: $threadIds, fromRole: $fromRole, to: $to) {
    messages { id } userErrors { code message } } }`;
const DELETE = `mutation Delete($ids: [ID!]!) { deleteMessages(ids: $ids) {
  messages { id } userErrors { code message } } }`;

// The message's document. Links open outside the app; the iframe's sandbox="" blocks
// scripts and forms whatever the sanitizer let through, and the page's CSP still applies.
function frameDocument(html) {
  return `<!doctype html><html><head><meta charset="utf-8"><base target="_blank">
<style>body{font:15px/1.45 system-ui,sans-serif;margin:.6rem;color:#1d2330;word-wrap:break-word}img{max-width:100%}</style>
</head><body>${html}</body></html>`;
}

function size(bytes) {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${Math.max(1, Math.ceil(bytes / 1024))} kB`;
}

// A signed downloadUrl lives minutes (MAILSYNC_ATTACHMENT_LINK_SECONDS, 10 by default): a
// link clicked long after the message was opened asks for fresh ones first.
const FRESH_MS = 4 * 60 * 1000;

function attachmentList(m) {
  const files = m.attachments.filter((a) => !a.inline || !a.contentType.startsWith("image/"));
  if (!files.length) return null;
  function link(a, label) {
    let signedAt = Date.now();
    return h("a", { href: a.downloadUrl, download: a.filename || "attachment", rel: "noreferrer",
      onclick: async (event) => {
        if (Date.now() - signedAt < FRESH_MS) return;  // followed as it is
        event.preventDefault();
        const anchor = event.currentTarget;
        const fresh = (await gql(LINKS, { id: m.id })).message;
        const url = fresh?.attachments.find((x) => x.id === a.id)?.downloadUrl;
        if (!url) { toast("This attachment is no longer available."); return; }
        anchor.href = url;
        signedAt = Date.now();
        anchor.click();
      } }, label);
  }
  return h("ul", { class: "attachments", "aria-label": "Attachments" }, files.map((a) => {
    const label = `${a.filename || "(unnamed)"} · ${a.contentType} · ${size(a.size)}`;
    return h("li", {}, a.downloadUrl ? link(a, label)
      : h("span", { class: "hint" }, `${label} (not downloadable until the next sync)`));
  }));
}

// `hooks`: own (the viewer's account ids), folderRole() (the listing's), changed(threadId,
// {unreadCount, flagged}) and gone(threadId), which the inbox list follows.
export function messageView(reader, hooks) {
  let showing = 0;

  async function show(id, remote = false) {
    const mine = ++showing;
    if (!remote) replace(reader, h("p", { class: "hint" }, "Loading…"));  // no stale buttons
    const m = (await gql(MESSAGE, { id, remote })).message;
    if (mine !== showing) return;  // another message was chosen meanwhile
    if (!m) { replace(reader, h("p", { class: "error" }, "This message is not available.")); return; }
    const owned = hooks.own.has(m.account.id);
    if (!m.isRead && owned) await mark(m, { read: true });
    if (mine !== showing) return;
    render(m, remote, owned);
  }

  function unreadCount(m) {
    return m.thread.filter((t) => (t.id === m.id ? !m.isRead : !t.isRead)).length;
  }

  async function mark(m, change) {
    const result = (await gql(MARK, { ids: [m.id], ...change })).markMessages;
    if (result.userErrors.length) { toast(result.userErrors[0].message); return; }
    Object.assign(m, result.messages[0]);
    const read = reader.querySelector("#toggle-read");
    if (read) read.textContent = m.isRead ? "Mark unread" : "Mark read";
    const flag = reader.querySelector("#toggle-flag");
    if (flag) {
      flag.textContent = m.isFlagged ? "Unflag" : "Flag";
      flag.setAttribute("aria-pressed", String(m.isFlagged));
    }
    hooks.changed(m.threadId, {
      unreadCount: unreadCount(m),
      flagged: m.isFlagged || m.thread.some((t) => t.id !== m.id && t.isFlagged),
    });
  }

  async function act(m, query, vars, done) {
    const result = Object.values(await gql(query, vars))[0];
    if (result.userErrors.length) toast(result.userErrors.map((e) => e.message).join(" "));
    if (!result.messages.length) return;
    // The conversation leaves this listing at once; the server follows on the account's
    // next sync (and a refusal there brings it back with writeBackError).
    replace(reader, h("p", { class: "hint", role: "status" }, done));
    hooks.gone(m.threadId);
  }

  // Deleting for good cannot be undone: asked in the page first.
  function confirmDelete(group, remove) {
    const back = [...group.childNodes];
    const cancel = h("button", { type: "button", onclick: () => { group.replaceChildren(...back); group.querySelector("#delete").focus(); } }, "Cancel");
    group.replaceChildren(
      h("span", {}, "Delete this conversation for good? It cannot be undone."),
      h("button", { type: "button", class: "danger", id: "confirm-delete", onclick: remove }, "Yes, delete for good"),
      cancel);
    cancel.focus();
  }

  function conversationActions(m) {
    const role = hooks.folderRole();
    const move = (to, done) => act(m, MOVE, { threadIds: [m.threadId], fromRole: role, to: { role: to } }, done);
    const trashed = m.thread.filter((t) => t.folder.role === "TRASH" && hooks.own.has(t.account.id)).map((t) => t.id);
    return h("div", { class: "row actions", role: "group", "aria-label": "Conversation actions" },
      role !== "ARCHIVE"
        ? h("button", { type: "button", id: "archive", onclick: () => move("ARCHIVE", "Archived.") }, "Archive") : null,
      role === "TRASH"
        ? h("button", { type: "button", id: "delete", onclick: (e) => confirmDelete(e.currentTarget.parentElement, () => act(m, DELETE, { ids: trashed }, "Deleted for good.")) }, "Delete for good")
        : h("button", { type: "button", id: "delete", onclick: () => move("TRASH", "Moved to Trash.") }, "Delete"),
      role !== "INBOX"
        ? h("button", { type: "button", id: "to-inbox", onclick: () => move("INBOX", "Moved to the inbox.") }, "Move to inbox") : null);
  }

  function opened(m, remote, owned) {
    const body = m.bodyHtml != null
      ? h("iframe", { sandbox: "", title: `Message from ${person(m.from) || "unknown sender"}`, srcdoc: frameDocument(m.bodyHtml), referrerpolicy: "no-referrer" })
      : h("pre", {}, m.bodyText || "");
    return h("article", { class: "message open", "aria-labelledby": "message-from" },
      h("p", { class: "hint", id: "message-from" }, "From ", person(m.from), " · to ", m.to.map(person).join(", "),
        m.cc.length ? ` · cc ${m.cc.map(person).join(", ")}` : "", " · ", new Date(m.date).toLocaleString()),
      h("p", { class: "hint" }, `In ${m.account.emailAddress} (${m.folder.name})`,
        owned ? "" : ` · shared by ${m.account.owner.name}, read-only`),
      m.writeBackError ? h("p", { class: "error", role: "alert" }, `Not done on the mail server: ${m.writeBackError}`) : null,
      m.bodyDownloaded ? null : h("p", { class: "hint" }, "This message is too large: only its headers were synced."),
      h("div", { class: "row actions", role: "group", "aria-label": "Message actions" },
        owned ? h("button", { type: "button", id: "toggle-read", onclick: () => mark(m, { read: !m.isRead }) }, m.isRead ? "Mark unread" : "Mark read") : null,
        owned ? h("button", { type: "button", id: "toggle-flag", "aria-pressed": String(m.isFlagged), onclick: () => mark(m, { flagged: !m.isFlagged }) }, m.isFlagged ? "Unflag" : "Flag") : null,
        h("a", { class: "button", id: "reply", href: `#/compose/reply/${encodeURIComponent(m.id)}` }, "Reply"),
        m.to.length + m.cc.length > 1
          ? h("a", { class: "button", id: "reply-all", href: `#/compose/reply-all/${encodeURIComponent(m.id)}` }, "Reply all") : null,
        h("a", { class: "button", id: "forward", href: `#/compose/forward/${encodeURIComponent(m.id)}` }, "Forward"),
        m.bodyHtml != null && !remote
          ? h("button", { type: "button", id: "remote-images", onclick: () => show(m.id, true) }, "Show remote images") : null),
      m.bodyHtml != null && !remote
        ? h("p", { class: "hint" }, "Remote images are blocked: loading them tells the sender when the mail was read.") : null,
      attachmentList(m),
      body);
  }

  function render(m, remote, owned) {
    const heading = h("h2", { tabindex: -1 }, m.subject || "(no subject)");
    const thread = m.thread.length > 1
      ? h("ol", { class: "thread", "aria-label": `Conversation, ${m.thread.length} messages` }, m.thread.map((t) => h("li", {},
        t.id === m.id ? opened(m, remote, owned)
          : h("a", { href: `#/inbox/${encodeURIComponent(t.id)}`, class: t.isRead ? "" : "unread" },
            h("span", { class: "who" }, t.from ? t.from.name || t.from.address : "(no sender)"), " · ",
            h("time", { datetime: t.date }, when(t.date)), " · ", h("span", { class: "hint" }, t.snippet)))))
      : opened(m, remote, owned);
    replace(reader, heading, owned ? conversationActions(m) : null, thread);
    if (!remote && reader.contains(document.activeElement) === false && document.activeElement?.closest?.("#messages")) {
      heading.focus({ preventScroll: true });  // keyboard users land on what they opened
    }
  }

  return { show };
}
