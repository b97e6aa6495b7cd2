(previous) => {
  // The Mark selection button's browser step (its event's js=): the selection as {"field", "start", "end", "text"},
  // offsets in code points of the field's text (JavaScript strings count UTF-16 units; Array.from counts code points).
  const fail = (message) => [JSON.stringify({error: message})];
  const selection = window.getSelection();
  if (!selection || selection.rangeCount === 0 || selection.isCollapsed) {
    return fail("Select some words in a field first, then press Mark selection.");
  }
  const range = selection.getRangeAt(0);
  const holder = (node) => {
    const element = node.nodeType === 1 ? node : node.parentElement;
    return element ? element.closest("#gl-label-fields .gl-field-text[data-field]") : null;
  };
  const box = holder(range.startContainer);
  if (!box || box !== holder(range.endContainer)) {
    return fail("Select text inside one field of the item (a selection may not cross two fields).");
  }
  const before = document.createRange();
  before.selectNodeContents(box);
  before.setEnd(range.startContainer, range.startOffset);
  const points = (text) => Array.from(text).length;
  const text = range.toString();
  const start = points(before.toString());
  if (document.activeElement) { document.activeElement.blur(); }  // Enter then submits, not marks again
  return [JSON.stringify({field: box.dataset.field, start: start, end: start + points(text), text: text})];
}
