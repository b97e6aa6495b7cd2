() => {
  // Keyboard for the Label tab, installed once per page (Blocks.launch(js=...)). The buttons work without it.
  // Scores are typed as numbers: on a scale with 10 or more levels "1" then "0" within a second chooses 10 (the
  // "1" alone chooses 1 meanwhile). Enter presses the highlighted (primary) button: Submit, Save changes, or on the
  // reveal whichever of Keep / Change is primary. When a new item comes up and its text is not on the screen (a
  // phone, or after scrolling down to the buttons), the item is scrolled to the top of the screen. On a pairwise
  // item (webapp.studies.pair_label) "1" and "2" answer with that response and "T" with a tie.
  if (window.__glLabelKeys) { return; }
  window.__glLabelKeys = true;
  const usable = (el) => el && el.offsetParent !== null && !el.disabled;
  const click = (selector) => {
    const el = document.querySelector(selector);
    if (usable(el)) { el.click(); return true; }
    return false;
  };
  const choose = (value) => {
    const radio = document.querySelector('#gl-label-score input[type="radio"][value="' + value + '"]');
    // Focus the choice too, so that the next Enter reaches this handler instead of a focused button.
    if (radio && !radio.disabled) { radio.click(); radio.focus(); return true; }
    return false;
  };
  let typed = "", typedAt = 0;
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey || event.isComposing) { return; }
    const work = document.getElementById("gl-label-work");
    if (!work || work.offsetParent === null) { return; }  // no item on screen (or another tab)
    const target = event.target;
    const tag = target && target.tagName ? target.tagName : "";
    const typing = target && (target.isContentEditable || tag === "TEXTAREA" || tag === "SELECT"
      || (tag === "INPUT" && target.type !== "radio"));
    if (typing) { return; }
    const pair = document.getElementById("gl-label-pair"), reveal = document.getElementById("gl-label-reveal");
    if (usable(pair) && !usable(reveal)) {  // a pairwise item to answer: 1 and 2 choose a response, T a tie
      const pick = {"1": "#gl-label-pick-1", "2": "#gl-label-pick-2", "t": "#gl-label-pick-tie",
                    "T": "#gl-label-pick-tie"}[event.key];
      if (pick && click(pick)) { event.preventDefault(); return; }
    }
    if (/^[0-9]$/.test(event.key)) {
      const now = Date.now();
      const longer = (now - typedAt < 1000 ? typed : "") + event.key;
      typedAt = now;
      if (longer !== event.key && choose(longer)) { typed = longer; event.preventDefault(); }
      else if (choose(event.key)) { typed = event.key; event.preventDefault(); }
      else { typed = ""; }
    } else if (event.key === "Enter") {
      if (tag === "BUTTON" || tag === "A") { return; }  // the focused button takes its own Enter
      if (click("#gl-label-submit") || click("#gl-label-reveal button.primary")) { event.preventDefault(); }
    } else if (event.key === "s" || event.key === "S") {
      if (click("#gl-label-skip")) { event.preventDefault(); }
    }
  });
  let shown = "";
  new MutationObserver(() => {
    for (const label of document.querySelectorAll("#gl-label-score label")) {  // the whole level on hover
      const text = label.textContent.trim();
      if (label.title !== text) { label.title = text; }
    }
    const header = document.getElementById("gl-label-item");
    const fields = document.getElementById("gl-label-fields");
    const work = document.getElementById("gl-label-work");
    if (!header || !fields || !work || work.offsetParent === null) { shown = ""; return; }
    const now = header.textContent;
    if (now === shown) { return; }
    shown = now;
    const top = header.getBoundingClientRect().top;
    if (top < 0 || fields.getBoundingClientRect().top + 96 > window.innerHeight) {
      header.scrollIntoView({block: "start"});
    }
  }).observe(document.body, {childList: true, subtree: true, characterData: true, attributes: true,
             attributeFilter: ["style", "class"]});
}
