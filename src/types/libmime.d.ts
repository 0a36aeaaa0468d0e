declare module 'libmime' {
  const libmime: {
    decodeWords(str: string): string;
  };
  export default libmime;
}
