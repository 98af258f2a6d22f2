// The inbox as conversations: every synced address together or one at a time, a folder,
// unread only, search, endless scrolling over keyset pages, new mail appearing live. A
// conversation opens with its latest message: the sanitized HTML in a sandboxed iframe,
// remote images only on request, inline images and attachments through signed URLs.
import { gql, onReconnect, subscribe } from "/app/js/api.js";
import { h, replace, when } from "/app/js/dom.js";
import { messageView } from "/app/js/message.js";

export const PAGE = 30;
const LIST = `query Conversations($filter: InboxFilter, $first: Int, $after: String) {
  conversations(filter: $filter, first: $first, after: $after) {
    edges { node { id messageCount unreadCount isFlagged hasAttachments
      participants { name address } accounts { id emailAddress }
      latestMessage { id subject snippet date } } }
    pageInfo { hasNextPage endCursor } } }`;
const ACCOUNTS = "query { mailAccounts { id emailAddress status } }";
const COMPLETED = "subscription { syncCompleted { account { id } newMessages removedMessages updatedMessages } }";
const FOLDERS = [["INBOX", "Inbox"], ["SENT", "Sent"], ["ARCHIVE", "Archive"], ["TRASH", "Trash"]];

function names(participants) {
  if (!participants.length) return "(no sender)";
  return participants.map((p) => p.name || p.address).join(", ");
}

export async function inboxView(main, [messageId]) {
  const accounts = (await gql(ACCOUNTS)).mailAccounts;
  const own = new Set(accounts.map((a) => a.id));
  const filter = { accountIds: null, folderRole: null, unread: null, search: null };
  const switcher = h("select", { id: "account-switcher" },
    h("option", { value: "" }, "All addresses"),
    accounts.map((a) => h("option", { value: a.id }, a.emailAddress)));
  const folder = h("select", { id: "folder" }, FOLDERS.map(([role, text]) => h("option", { value: role }, text)));
  const unread = h("input", { type: "checkbox", id: "unread-only" });
  const search = h("input", { type: "search", id: "search", placeholder: "Words or \"a phrase\"", maxlength: 500 });
  const list = h("ul", { class: "list", id: "messages", "aria-label": "Conversations" });
  const more = h("li", { class: "hint more", id: "more" });
  const announce = h("p", { class: "sr-only", role: "status", id: "inbox-status" });
  const reader = h("section", { class: "reader card", id: "reader", "aria-label": "Conversation" },
    h("p", { class: "hint" }, "Choose a conversation."));
  replace(main,
    h("div", { class: "row card filters" },
      h("label", { class: "inline", for: "account-switcher" }, "Account"), switcher,
      h("label", { class: "inline", for: "folder" }, "Folder"), folder,
      h("label", { class: "inline row", for: "unread-only" }, unread, "Unread only"),
      h("form", { role: "search", class: "row", onsubmit: (e) => { e.preventDefault(); filter.search = search.value.trim() || null; reload(); } },
        h("label", { class: "inline", for: "search" }, "Search mail"), search, h("button", { type: "submit" }, "Search"))),
    announce,
    h("div", { class: "inbox" }, list, reader));

  // Endless scrolling: the next page once the end of the list comes into view.
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && hasNext) page(false);
  }, { root: list, rootMargin: "200px" });
  let cursor = null;
  let hasNext = false;
  let loading = null;
  let generation = 0;
  let pages = 0;
  let selected = messageId || null;
  const rows = new Map();  // conversation id -> its <li>

  function item(c) {
    const m = c.latestMessage;
    const li = h("li", {
      class: [c.unreadCount ? "unread" : "", m.id === selected ? "selected" : ""].join(" "),
      dataset: { id: c.id, message: m.id },
    },
      h("button", { type: "button", "aria-current": m.id === selected ? "true" : null,
        onclick: () => open(m.id) },
        h("div", { class: "meta" },
          h("span", { class: "who" }, names(c.participants), c.messageCount > 1 ? ` (${c.messageCount})` : ""),
          h("time", { datetime: m.date }, when(m.date))),
        h("div", { class: "subject" },
          h("span", { class: "star", "aria-label": "Flagged", role: "img", hidden: !c.isFlagged }, "★ "),
          m.subject || "(no subject)",
          c.hasAttachments ? h("span", { class: "clip", "aria-label": "Has attachments", role: "img" }) : null,
          c.unreadCount ? h("span", { class: "sr-only" }, `, ${c.unreadCount} unread`) : null),
        h("div", { class: "snippet" }, m.snippet),
        accounts.length > 1 || !filter.accountIds
          ? h("div", { class: "hint accounts" }, c.accounts.map((a) => a.emailAddress).join(", ")) : null));
    return li;
  }

  // The conversation's row, drawn again; the row it replaces (if any) is returned too.
  function put(c) {
    const old = rows.get(c.id);
    const li = item(c);
    rows.set(c.id, li);
    return [li, old];
  }

  function footer() {
    replace(more, hasNext
      ? h("button", { type: "button", id: "load-more", onclick: () => page(false) }, "Load more")
      : rows.size ? "No more conversations."
        : accounts.length ? "No conversations."
          : ["No mail accounts yet: ", h("a", { href: "#/accounts" }, "add one"), " to see its mail here."]);
    list.append(more);
    // Observed afresh: a sentinel still in view after a short page loads the next one.
    observer.unobserve(more);
    observer.observe(more);
  }

  function fetchPage(after) {
    return gql(LIST, { filter: { ...filter }, first: PAGE, after }).then((data) => data.conversations);
  }

  // One page at a time; a page of an older listing (the filter changed meanwhile) is dropped.
  function page(first) {
    if (loading) return loading;
    const mine = generation;
    const run = (async () => {
      try {
        const data = await fetchPage(first ? null : cursor);
        if (mine !== generation) return;
        if (first) { list.replaceChildren(); rows.clear(); pages = 0; }
        for (const edge of data.edges) {
          const [li, old] = put(edge.node);
          old?.remove();  // it moved up between two pages (new mail) and is shown once
          list.append(li);
        }
        cursor = data.pageInfo.endCursor;
        hasNext = data.pageInfo.hasNextPage;
        pages += 1;
        footer();
      } finally {
        if (loading === run) loading = null;  // a reload meanwhile has its own
      }
    })();
    loading = run;
    return run;
  }

  function reload() {
    generation += 1;
    cursor = null;
    loading = null;
    return page(true);
  }

  // New mail: the first page again, merged at the top (a conversation with a new
  // message moves up); the pages below stay where the user scrolled them.
  async function refresh(removed) {
    if (removed && pages <= 1) { await reload(); return; }
    const mine = generation;
    const data = await fetchPage(null);
    if (mine !== generation) return;
    // A conversation with a newer message moves to the top; one that only changed (read,
    // flagged elsewhere) is redrawn where it is.
    const top = [];
    let added = 0;
    for (const c of data.edges.map((e) => e.node)) {
      const [li, old] = put(c);
      if (old && old.dataset.message === c.latestMessage.id) { old.replaceWith(li); continue; }
      old?.remove();
      if (!old) added += 1;
      top.push(li);
    }
    list.prepend(...top);
    if (pages <= 1) footer();
    if (added) announce.textContent = `${added} new conversation${added > 1 ? "s" : ""}.`;
  }

  switcher.addEventListener("change", () => { filter.accountIds = switcher.value ? [switcher.value] : null; reload(); });
  folder.addEventListener("change", () => { filter.folderRole = folder.value === "INBOX" ? null : folder.value; reload(); });
  unread.addEventListener("change", () => { filter.unread = unread.checked ? true : null; reload(); });

  const view = messageView(reader, {
    own,
    folderRole: () => filter.folderRole || "INBOX",
    // A conversation changed (read, flagged) or left this listing (moved, deleted).
    changed(threadId, { unreadCount, flagged }) {
      const li = rows.get(threadId);
      if (!li) return;
      if (unreadCount !== undefined) li.classList.toggle("unread", unreadCount > 0);
      if (flagged !== undefined) li.querySelector(".star").hidden = !flagged;
    },
    gone(threadId) {
      rows.get(threadId)?.remove();
      rows.delete(threadId);
      footer();
      selected = null;
      history.replaceState(null, "", "#/inbox");  // not a navigation: the list stays
    },
  });

  // The address names the open message; choosing the one already named opens it again.
  function open(id) {
    const target = `#/inbox/${encodeURIComponent(id)}`;
    if (location.hash === target) show(id);
    else location.hash = target;
  }

  async function show(id) {
    selected = id;
    for (const li of rows.values()) {
      const on = li.dataset.message === id;
      li.classList.toggle("selected", on);
      if (on) li.firstChild.setAttribute("aria-current", "true");
      else li.firstChild.removeAttribute("aria-current");
    }
    await view.show(id);
  }

  await reload();
  if (selected) await show(selected);
  const stop = subscribe(COMPLETED, {}, (data) => {
    const done = data.syncCompleted;
    if (done.newMessages || done.removedMessages || done.updatedMessages) refresh(done.removedMessages > 0);
  });
  const caughtUp = onReconnect(() => refresh(true));  // new mail while the socket was down
  const cleanup = () => { stop(); caughtUp(); observer.disconnect(); };
  cleanup.update = ([id]) => (id ? show(id) : null);
  return cleanup;
}
