import { sql, type SQL } from 'drizzle-orm';

/**
 * A text[] value for raw SQL. drizzle's `sql` spreads a JS array into a list of parameters
 * (`($1, $2)`), which is no array; one JSON parameter is, on both drivers, however long the list.
 */
export function textArray(list: readonly string[]): SQL {
  return sql`array(select jsonb_array_elements_text(${JSON.stringify(list)}::jsonb))`;
}
