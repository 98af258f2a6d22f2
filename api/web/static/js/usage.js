// Admins: every company user's active sync accounts (the usage view).
import { gql } from "/app/js/api.js";
import { h, replace, statusBadge, when } from "/app/js/dom.js";

const USAGE = `query { syncUsage { user { name email role } accountLimit
  accounts { id emailAddress status sharing lastSyncedAt messageCount } } }`;

export async function usageView(main) {
  const usage = (await gql(USAGE)).syncUsage;
  replace(main, h("h2", {}, "Team usage"),
    h("table", { class: "card", id: "usage" },
      h("thead", {}, h("tr", {}, ["User", "Accounts", "Address", "Status", "Sharing", "Messages", "Last sync"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, usage.flatMap((u) => {
        const accounts = u.accounts.length ? u.accounts : [null];
        return accounts.map((a, i) => h("tr", {},
          i === 0 ? h("td", { rowspan: accounts.length }, `${u.user.name} (${u.user.email})${u.user.role === "ADMIN" ? " · admin" : ""}`) : null,
          i === 0 ? h("td", { rowspan: accounts.length }, `${u.accounts.length} of ${u.accountLimit}`) : null,
          a ? [h("td", {}, a.emailAddress), h("td", {}, statusBadge(a.status)), h("td", {}, a.sharing),
            h("td", {}, String(a.messageCount)), h("td", {}, when(a.lastSyncedAt))]
            : h("td", { colspan: 5, class: "hint" }, "No active accounts")));
      }))));
}
