import render from 'dom-serializer';
import { type ChildNode, type Element, isTag, isText } from 'domhandler';
import { parseDocument } from 'htmlparser2';

/**
 * Text in HTML mail that a reader never sees: display:none, visibility:hidden, zero size or opacity,
 * or text in the colour of its background. Spam and prompt-injection attacks hide words there for
 * filters (and AI filters) to read. It is reported and removed before the text reaches the prompt.
 */

export interface HiddenTextReport {
  elements: number;
  chars: number;
  techniques: string[];
}

export interface StrippedHtml {
  html: string;
  hidden: HiddenTextReport;
}

type Style = Record<string, string>;

function parseStyle(style: string | undefined): Style {
  const out: Style = {};
  for (const decl of (style ?? '').split(';')) {
    const i = decl.indexOf(':');
    if (i > 0) out[decl.slice(0, i).trim().toLowerCase()] = decl.slice(i + 1).trim().toLowerCase().replace(/\s*!important$/, '');
  }
  return out;
}

const NAMED: Record<string, string> = { white: '#ffffff', black: '#000000', red: '#ff0000', transparent: 'transparent' };

/** A colour as #rrggbb (or 'transparent'), when it can be read. */
export function normaliseColour(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const v = value.trim().toLowerCase();
  if (NAMED[v]) return NAMED[v];
  let m = /^#([0-9a-f]{3})$/.exec(v);
  if (m) return `#${[...m[1]!].map((c) => c + c).join('')}`;
  m = /^#([0-9a-f]{6})$/.exec(v);
  if (m) return `#${m[1]}`;
  m = /^rgba?\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)(?:\s*,\s*([\d.]+))?\s*\)$/.exec(v);
  if (m) {
    if (m[4] !== undefined && Number(m[4]) === 0) return 'transparent';
    return `#${[m[1], m[2], m[3]].map((n) => Math.min(255, Number(n)).toString(16).padStart(2, '0')).join('')}`;
  }
  return undefined;
}

const isZero = (v: string | undefined) => v !== undefined && /^0(\.0+)?(px|pt|em|rem|%)?$/.test(v);

/** Why an element hides its text, or null. `background` is the colour its text sits on. */
function hidingTechnique(el: Element, style: Style, colour: string | undefined, background: string): string | null {
  if ('hidden' in el.attribs || style.display === 'none') return 'display:none';
  if (style.visibility === 'hidden') return 'visibility:hidden';
  if (isZero(style['font-size']) || el.attribs.size === '0') return 'zero font size';
  if (style.opacity !== undefined && Number(style.opacity) === 0) return 'opacity:0';
  if ((isZero(style.width) || isZero(style.height) || isZero(style['max-height'])) && style.overflow === 'hidden') return 'zero size';
  if (colour && colour === background) return 'text in the background colour';
  return null;
}

function textOf(nodes: ChildNode[]): string {
  let s = '';
  for (const n of nodes) {
    if (isText(n)) s += n.data;
    else if (isTag(n) && n.name !== 'style' && n.name !== 'script') s += textOf(n.children);
  }
  return s;
}

/** Every hiding technique needs one of these in the markup; HTML without any is not parsed at all. */
const MAY_HIDE = /display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0|opacity\s*:\s*0|[\s<]hidden[\s=>]|\b(max-)?(width|height)\s*:\s*0|\bcolou?r\s*[:=]|\bsize\s*=\s*["']?0/i;

export function stripHiddenText(html: string): StrippedHtml {
  if (!MAY_HIDE.test(html)) return { html, hidden: { elements: 0, chars: 0, techniques: [] } };
  const doc = parseDocument(html, { decodeEntities: true });
  const hidden: HiddenTextReport = { elements: 0, chars: 0, techniques: [] };

  const walk = (nodes: ChildNode[], colour: string | undefined, background: string) => {
    for (const node of [...nodes]) {
      if (!isTag(node)) continue;
      const style = parseStyle(node.attribs.style);
      const ownBg = normaliseColour(style['background-color'] ?? style.background?.split(/\s+/)[0] ?? node.attribs.bgcolor);
      const bg = ownBg && ownBg !== 'transparent' ? ownBg : background;
      const fg = normaliseColour(style.color ?? node.attribs.color) ?? colour;
      const technique = hidingTechnique(node, style, fg, bg);
      if (technique) {
        const text = textOf(node.children).replace(/\s+/g, ' ').trim();
        // An empty spacer (a tracking pixel's wrapper, a layout cell) hides nothing.
        if (text.length > 0) {
          hidden.elements++;
          hidden.chars += text.length;
          if (!hidden.techniques.includes(technique)) hidden.techniques.push(technique);
          const siblings = node.parent?.children;
          if (siblings) siblings.splice(siblings.indexOf(node), 1);
          continue;
        }
      }
      walk(node.children, fg, bg);
    }
  };
  // Mail clients show a message on white unless it says otherwise.
  walk(doc.children, undefined, '#ffffff');
  return { html: hidden.elements ? render(doc, { decodeEntities: true }) : html, hidden };
}
