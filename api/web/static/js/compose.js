// Compose, reply, reply all and forward: the sender is one of the user's synced
// addresses, the default preselected; files go as a GraphQL multipart request, a forward
// carries the original's attachments server-side (forwardAttachmentsOf), and the sent
// message's status arrives live (outgoingMessageChanged).
import { gql, gqlWithFiles, onReconnect, subscribe } from "/app/js/api.js";
import { h, person, replace, statusBadge, when } from "/app/js/dom.js";

const OUTGOING = "id subject to status error createdAt fromAddress";
const SENDERS = `query { me { defaultAccount { id } mailAccounts { id emailAddress status
  smtp { host } } } outgoingMessages(first: 20) { ${OUTGOING} } }`;
const OUTBOX = `query { outgoingMessages(first: 20) { ${OUTGOING} } }`;
const ORIGINAL = `query($id: ID!) { message(id: $id) { id subject date bodyText
  from { name address } to { name address } cc { name address } account { id }
  attachments { filename size } } }`;
const SEND = `mutation Send($input: SendEmailInput!) { sendEmail(input: $input) {
  outgoing { ${OUTGOING} } userErrors { code field message } } }`;
const CHANGED = `subscription { outgoingMessageChanged { ${OUTGOING} } }`;

const SYNCED = new Set(["SYNCING", "ACTIVE", "ERROR"]);
const TITLES = { reply: "Reply", "reply-all": "Reply all", forward: "Forward" };

function addresses(text) {
  return text.split(/[,;\n]/).map((part) => part.trim()).filter(Boolean);
}

function quote(original) {
  const lines = (original.bodyText || "").trimEnd().split("\n").map((line) => `> ${line}`);
  return `\n\nOn ${new Date(original.date).toLocaleString()}, ${person(original.from)} wrote:\n${lines.join("\n")}`;
}

function forwardText(original) {
  return ["", "", "---------- Forwarded message ----------", `From: ${person(original.from)}`,
    `Date: ${new Date(original.date).toLocaleString()}`, `Subject: ${original.subject || ""}`,
    `To: ${original.to.map(person).join(", ")}`, "", (original.bodyText || "").trimEnd()].join("\n");
}

export async function composeView(main, [mode, originalId]) {
  const data = await gql(SENDERS);
  const senders = data.me.mailAccounts.filter((a) => SYNCED.has(a.status) && a.smtp);
  const defaultId = data.me.defaultAccount?.id;
  const from = h("select", { id: "from" },
    senders.map((a) => h("option", { value: a.id, selected: a.id === defaultId }, a.emailAddress)));
  const to = h("input", { id: "to", autocomplete: "off", required: true });
  const cc = h("input", { id: "cc", autocomplete: "off" });
  const bcc = h("input", { id: "bcc", autocomplete: "off" });
  const files = h("input", { id: "attachments", type: "file", multiple: true });
  let forwardOf = null;
  const forwarded = h("div", { id: "forwarded" });
  const subject = h("input", { id: "subject", required: true, maxlength: 998, size: 60 });
  const body = h("textarea", { id: "body", rows: 12, cols: 80 });
  const error = h("p", { class: "error", role: "alert", id: "send-error" });
  let inReplyTo = null;
  if (originalId) {
    const original = (await gql(ORIGINAL, { id: originalId })).message;
    if (original) {
      const base = (original.subject || "").replace(/^((re|fwd?):\s*)+/i, "");
      if (mode === "reply" || mode === "reply-all") {
        to.value = original.from ? original.from.address : "";
        subject.value = `Re: ${base}`;
        inReplyTo = original.id;
        if (mode === "reply-all") {
          const mine = new Set(data.me.mailAccounts.map((a) => a.emailAddress.toLowerCase()));
          const others = [...original.to, ...original.cc].map((a) => a.address)
            .filter((a) => !mine.has(a.toLowerCase()) && a !== to.value);
          cc.value = [...new Set(others)].join(", ");
        }
      } else {
        subject.value = `Fwd: ${base}`;
        if (original.attachments.length) {
          forwardOf = original.id;
          replace(forwarded, h("label", { class: "row" },
            h("input", { type: "checkbox", id: "forward-attachments", checked: true }),
            `Include the original's attachments: ${original.attachments.map((a) => a.filename || "(unnamed)").join(", ")}`));
        }
      }
      body.value = mode === "forward" ? forwardText(original) : quote(original);
      if (senders.some((a) => a.id === original.account.id)) from.value = original.account.id;
    }
  }
  const outbox = h("tbody", { id: "outbox" });
  const rows = new Map();
  function show(message) {
    const row = h("tr", { dataset: { id: message.id } },
      h("td", {}, when(message.createdAt)), h("td", {}, message.fromAddress),
      h("td", {}, message.to.join(", ")), h("td", {}, message.subject),
      h("td", {}, statusBadge(message.status), message.error ? h("div", { class: "hint" }, message.error) : null));
    const old = rows.get(message.id);
    if (old) old.replaceWith(row); else outbox.prepend(row);
    rows.set(message.id, row);
  }
  [...data.outgoingMessages].reverse().forEach(show);

  const form = h("form", { class: "card", id: "compose", "aria-labelledby": "compose-title", novalidate: true },
    h("h2", { id: "compose-title" }, TITLES[mode] || "New message"),
    senders.length ? null : h("p", { class: "error" }, "No synced account can send yet: add one with SMTP and start its sync."),
    h("label", { for: "from" }, "From"), from,
    senders.length && !defaultId ? h("p", { class: "hint", id: "no-default" },
      "You have no default account: automated emails cannot be sent until you choose one under Mail accounts.") : null,
    h("label", { for: "to" }, "To ", h("span", { class: "hint" }, "(comma-separated)")), to,
    h("label", { for: "cc" }, "Cc"), cc,
    h("label", { for: "bcc" }, "Bcc"), bcc,
    h("label", { for: "subject" }, "Subject"), subject,
    h("label", { for: "body" }, "Message"), body,
    h("label", { for: "attachments" }, "Attach files ", h("span", { class: "hint" }, "(together up to the server's limit, 25 MB by default)")), files,
    forwarded,
    error,
    h("div", { class: "row" }, h("button", { class: "primary", type: "submit", id: "send", disabled: !senders.length }, "Send")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const input = {
      fromAccountId: from.value || null, to: addresses(to.value), cc: addresses(cc.value),
      bcc: addresses(bcc.value), subject: subject.value, bodyText: body.value,
      inReplyToMessageId: inReplyTo,
      forwardAttachmentsOf: forwardOf && form.querySelector("#forward-attachments")?.checked ? forwardOf : null,
    };
    const chosen = [...files.files];
    const send = form.querySelector("#send");
    send.disabled = true;
    send.textContent = chosen.length ? "Uploading…" : "Sending…";
    let result;
    try {
      result = chosen.length
        ? (await gqlWithFiles(SEND, { input: { ...input, attachments: chosen.map(() => null) } },
          Object.fromEntries(chosen.map((file, i) => [`input.attachments.${i}`, file])))).sendEmail
        : (await gql(SEND, { input })).sendEmail;
    } catch (e) {
      error.textContent = e.message;
      return;
    } finally {
      send.disabled = false;
      send.textContent = "Send";
    }
    if (result.userErrors.length) {
      error.textContent = result.userErrors.map((e) => `${e.message} (${e.code}${e.field ? `, ${e.field}` : ""})`).join(" ");
      return;
    }
    show(result.outgoing);
    form.reset();
    from.value = defaultId || (senders[0] && senders[0].id) || "";
    inReplyTo = null;
    forwardOf = null;
    forwarded.replaceChildren();
  });
  replace(main, form, h("section", { class: "card" }, h("h2", {}, "Sent from here"),
    h("table", {}, h("thead", {}, h("tr", {}, ["When", "From", "To", "Subject", "Status"].map((t) => h("th", { scope: "col" }, t)))), outbox)));
  const stop = subscribe(CHANGED, {}, (event) => show(event.outgoingMessageChanged));
  // Statuses that changed while the socket was down.
  const caughtUp = onReconnect(async () => [...(await gql(OUTBOX)).outgoingMessages].reverse().forEach(show));
  return () => { stop(); caughtUp(); };
}
