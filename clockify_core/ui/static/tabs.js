// WAI-ARIA tabs with automatic activation: arrows move between tabs, Home/End jump,
// only the selected tab is in the tab order (https://www.w3.org/WAI/ARIA/apg/patterns/tabs/).

export function setupTabs(tablist, onSelect) {
  const tabs = [...tablist.querySelectorAll('[role="tab"]')];

  function select(tab, { focus = false } = {}) {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
    }
    if (focus) tab.focus();
    onSelect(tab.id.replace(/^tab-/, ""));
  }

  tablist.addEventListener("keydown", (event) => {
    const index = tabs.indexOf(document.activeElement);
    if (index < 0) return;
    const moves = { ArrowRight: index + 1, ArrowDown: index + 1, ArrowLeft: index - 1, ArrowUp: index - 1, Home: 0, End: tabs.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    select(tabs[(moves[event.key] + tabs.length) % tabs.length], { focus: true });
  });
  for (const tab of tabs) tab.addEventListener("click", () => select(tab));

  return {
    current: () => tabs.find((t) => t.getAttribute("aria-selected") === "true").id.replace(/^tab-/, ""),
    select: (name) => select(tabs.find((t) => t.id === `tab-${name}`)),
  };
}
