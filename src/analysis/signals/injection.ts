/** Phrasing aimed at an AI reading the mail rather than at the recipient. */

const PATTERNS: [string, RegExp][] = [
  ['ignore_instructions', /\b(ignore|disregard|forget|override)\b.{0,30}\b(all|any|the|previous|prior|above|earlier|your)\b.{0,20}\b(instructions?|prompts?|rules|directions|guidelines)\b/i],
  ['role_play', /\byou are (now )?(an? )?(ai|assistant|language model|chatgpt|gpt|llm|spam filter|email (classifier|filter))\b/i],
  ['addresses_the_filter', /\b(attention|note|message|instructions?) (to|for) (the )?(ai|llm|assistant|spam filter|email filter|classifier|language model)\b/i],
  ['dictates_verdict', /\b(classify|mark|label|treat|categori[sz]e|flag) (this|the) (e-?mail|message)\b.{0,30}\b(as )?(safe|legit(imate)?|not (spam|phishing)|important|trusted|high priority)\b/i],
  ['system_prompt', /(\bsystem prompt\b|\bdeveloper (mode|message)\b|\[\/?(system|inst)\]|<\|?(system|im_start)\|?>)/i],
  ['output_override', /\b(respond|reply|answer|output) (only )?with\b.{0,40}\b(json|"verdict"|verdict|legit)\b/i],
];

export function promptInjection(text: string): string[] {
  return PATTERNS.filter(([, re]) => re.test(text)).map(([kind]) => kind);
}
